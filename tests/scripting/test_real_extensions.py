"""Real A1111 extensions, unchanged (``../shared/fixtures/extensions``, see its SOURCES.md), installed into a
temporary data folder's ``extensions/``: each one loads and does its job on a tiny SD1 checkpoint."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modules.core.request import GenerationRequest
from modules.scripting import runtime
from tests import tiny_models

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "extensions"
LOADABLE = ["stable-diffusion-webui-wildcards", "sd-dynamic-prompts", "stable-diffusion-webui-images-browser",
            "a1111-sd-webui-tagcomplete", "sd-webui-aspect-ratio-helper", "stable-diffusion-webui-state",
            "sd-webui-lora-block-weight", "CFG_Rescale_webui"]

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="the shared extension fixtures are not present")

BASE = dict(negative_prompt="", steps=2, width=64, height=64, cfg_scale=5.0, sampler_name="Euler", seed=77,
            do_not_save_samples=True, do_not_save_grid=True)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("real-extensions")
    ckpt = data / "models" / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpt / "tiny.safetensors", "sd1")
    for name in LOADABLE:
        shutil.copytree(FIXTURES / name, data / "extensions" / name, ignore=shutil.ignore_patterns(".git"))
    broken = data / "extensions" / "broken-ext" / "scripts"
    broken.mkdir(parents=True)
    (broken / "broken.py").write_text("import an_ldm_internal_that_does_not_exist\n", encoding="utf-8")
    wildcards = data / "wildcards"
    wildcards.mkdir()
    (wildcards / "colour.txt").write_text("crimson\n", encoding="utf-8")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    engine.test_data_dir = data
    yield engine
    runtime.unbind(engine)


def test_every_public_surface_extension_loads(engine):
    for name in LOADABLE:
        ext = runtime.host(engine).extensions.find(name)
        assert ext is not None and ext.scripts_loaded, name
        assert ext.errors == [], (name, ext.errors)


def test_an_extension_that_fails_to_import_is_reported_by_name_and_the_rest_run(engine, tmp_path):
    broken = engine.test_data_dir / "extensions" / "broken-ext"
    assert runtime.host(engine).extensions.find("broken-ext") is not None
    ext = runtime.host(engine).extensions.find("broken-ext")
    assert any("No module named 'an_ldm_internal_that_does_not_exist'" in e for e in ext.errors)
    assert any(str(broken) in str(e.file) for e in runtime.host(engine).scripts.load_errors)


def test_their_settings_are_registered_with_a1111_sections(engine):
    opts = engine.options
    assert opts.get("wildcards_write_infotext") is True  # wildcards' on_ui_settings
    assert opts.info("wildcards_same_seed").section == ("wildcards", "Wildcards")
    assert "dp_ignore_whitespace" in opts  # dynamic prompts registers in Script.__init__
    assert "tac_tagFile" in opts  # tag autocomplete


def test_wildcards_expand_the_prompt_and_write_the_original(engine, monkeypatch):
    wildcards_dir = engine.test_data_dir / "wildcards"
    monkeypatch.setattr(engine.args, "wildcards_dir", str(wildcards_dir), raising=False)
    out = runtime.host(engine).generate(GenerationRequest(prompt="a __colour__ ball", **BASE))
    assert out.prompts == ["a crimson ball"]
    assert "Wildcard prompt: a __colour__ ball" in out.infotexts[0] or 'Wildcard prompt: "a __colour__ ball"' in out.infotexts[0]
    assert "crimson" in out.infotexts[0].splitlines()[0]


def test_dynamic_prompts_expand_variants(engine):
    out = runtime.host(engine).generate(GenerationRequest(prompt="a {red|red} cube", batch_size=2, **BASE))
    assert out.prompts == ["a red cube", "a red cube"]
    assert out.infotexts[0].startswith("a red cube\n")


def test_dynamic_prompts_combinatorial_through_its_script_args(engine):
    runner = runtime.host(engine).scripts.txt2img
    dp = runner.find("Dynamic Prompts v2.17.1")
    assert dp is not None and dp.alwayson


def test_images_browser_tab_lists_generated_images(engine, tmp_path):
    import gradio as gr


    out_dir = engine.test_data_dir / "outputs" / "txt2img-images"
    req = GenerationRequest(prompt="a saved image", **{**BASE, "do_not_save_samples": False})
    runtime.host(engine).generate(req)
    saved = list(out_dir.rglob("*.png"))
    assert saved, "the generation saved nothing"
    with runtime.using(engine), gr.Blocks():
        tabs = [t for result in runtime.host(engine).callbacks.run("ui_tabs") for t in (result or [])]
    titles = [t[1] for t in tabs]
    assert "Image Browser" in titles
    # Its own listing function finds the saved picture (with the image's infotext readable by it).
    import sys

    from modules.scripting import loading

    ext = runtime.host(engine).extensions.find("stable-diffusion-webui-images-browser")
    browser = sys.modules[loading.module_name_for(ext.canonical_name, ext.path / "scripts" / "image_browser.py")]
    with runtime.using(engine):
        listed = browser.get_all_images(str(out_dir), "date", "down", "", "image_browser_tab_txt2img", 0,
                                           "All", 0, 0, 0, 0, "", False, False)
    names = [Path(item if isinstance(item, str) else item[0]).name for item in listed]
    assert saved[0].name in names


def test_tag_autocomplete_adds_its_api_routes(engine):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient


    app = FastAPI()
    with runtime.using(engine):
        runtime.host(engine).callbacks.run("app_started", None, app)
    paths = {getattr(r, "path", "") for r in app.routes}
    assert any(p.startswith("/tacapi/v1/") for p in paths), sorted(paths)
    with TestClient(app) as client:
        r = client.get("/tacapi/v1/lora-info/nothing")
        assert r.status_code in (200, 404)
