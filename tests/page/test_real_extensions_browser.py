"""Real A1111 extensions with page scripts (tag autocomplete, aspect-ratio helper, state), installed unchanged
from ``../shared/fixtures/extensions`` into the full app, in a real browser: A1111's JavaScript helpers are
there before their scripts run, each one does its job, and the page logs no JavaScript error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from modules.scripting import runtime
from tests import browser_harness, tiny_models
from tests.browser_harness import open_page, require_playwright, serve

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO.parent / "shared" / "fixtures" / "extensions"
EXTENSIONS = ["a1111-sd-webui-tagcomplete", "sd-webui-aspect-ratio-helper", "stable-diffusion-webui-state"]

require_playwright()
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason="the shared extension fixtures are not present")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("real-extensions-browser")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=0), data / "models" / "Stable-diffusion" / "t.safetensors", "sd1")
    for name in EXTENSIONS:
        shutil.copytree(FIXTURES / name, data / "extensions" / name, ignore=shutil.ignore_patterns(".git"))
    # The state extension saves only what its settings name.
    (data / "config.json").write_text(json.dumps({"state_txt2img": ["prompt", "sampling_steps"]}), encoding="utf-8")
    args = cmd_args.parse_args(["--data-dir", str(data)], environ={})
    engine = webui.build_engine(args)
    app = webui.create_app(engine, args)
    with serve(app, "real-extensions-browser") as url:
        yield SimpleNamespace(url=url, engine=engine)
    runtime.unbind(engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1100}) as pg:
        yield pg


def test_a1111_helpers_and_settings_are_there_for_extension_scripts(page, server):
    page.wait_for_function("() => window.opts && Object.keys(window.opts).length > 0", timeout=20_000)
    kinds = page.evaluate("() => [typeof gradioApp, typeof onUiLoaded, typeof onUiUpdate, typeof onAfterUiUpdate, "
                          "typeof onOptionsChanged, typeof updateInput, typeof get_tab_index, typeof titles]")
    assert kinds == ["function"] * 7 + ["object"]
    assert page.evaluate("() => opts.tac_active") is True  # an extension's own setting
    assert page.evaluate("() => opts.samples_format") == "png"
    for ext in EXTENSIONS:
        assert runtime.host(server.engine).extensions.find(ext).errors == []


def test_tag_autocomplete_suggests_tags_while_typing(page):
    prompt = page.locator("#txt2img_prompt textarea")
    page.wait_for_function("() => typeof TAC_CFG !== 'undefined' && TAC_CFG && window.allTags && allTags.length > 0",
                           timeout=30_000)
    prompt.click()
    prompt.press_sequentially("1gi", delay=60)
    results = page.locator(".autocompleteResults").first
    results.wait_for(state="visible", timeout=10_000)
    assert "1girl" in results.inner_text()
    browser_harness.shot(page, "real_extensions_tag_autocomplete.png")
    results.locator("li").first.click()
    assert prompt.input_value().startswith("1girl")


def test_aspect_ratio_helper_controls_the_size_sliders(page):
    page.wait_for_function("() => window.__txt2imgAspectRatioController !== undefined", timeout=20_000)
    assert page.locator("#txt2img_select_aspect_ratio").count() == 1
    assert page.locator("#txt2img_script_aspect_ratio_helper").count() >= 1  # its accordion in the scripts


def test_state_restores_the_prompt_and_steps_after_a_reload(page):
    page.wait_for_function("() => typeof state !== 'undefined'", timeout=20_000)
    prompt = page.locator("#txt2img_prompt textarea")
    prompt.fill("a remembered prompt")
    steps = page.locator("#txt2img_steps input[type=number]")
    steps.fill("33")
    steps.press("Tab")
    page.wait_for_function("() => localStorage.getItem('state-txt2img_steps') === '33'", timeout=10_000)
    page.reload()
    page.wait_for_selector("#txt2img_prompt textarea")
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === 'a remembered prompt'",
                           timeout=20_000)
    page.wait_for_function("() => document.querySelector('#txt2img_steps input[type=number]').value === '33'",
                           timeout=20_000)
