"""Settings tab, quicksettings bar and Extras tab in a real browser (Playwright + the system Chromium).

A small page holds just these pieces over a tiny engine (one tiny SD1 checkpoint, a copy of it and a broken
file). Needs `pip install playwright` and Debian's chromium (/usr/bin/chromium); never `playwright install`.
Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.browser_harness import open_page, require_playwright, serve, shot

require_playwright()  # the whole module skips where Playwright or Chromium is missing


def build_app(engine):
    import gradio as gr
    from fastapi import FastAPI

    from modules.page.extras import create_extras_tab
    from modules.page.settings import create_quicksettings, create_settings_tab

    with gr.Blocks(title="settings test") as demo:
        with gr.Row(elem_id="quicksettings"):
            quick = create_quicksettings(engine)
        with gr.Tabs():
            with gr.Tab("Extras", elem_id="tab_extras"):
                create_extras_tab(engine)
            with gr.Tab("Settings", elem_id="tab_settings"):
                create_settings_tab(engine, quicksettings=quick)
    app = FastAPI()
    gr.mount_gradio_app(app, demo, path="/")
    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args
    from tests import tiny_models

    data = tmp_path_factory.mktemp("settings-browser")
    ckpt = data / "models" / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpt / "a.safetensors", "sd1")
    shutil.copy(ckpt / "a.safetensors", ckpt / "b.safetensors")
    (ckpt / "broken.safetensors").write_bytes(b"not a model at all")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    engine.ensure_model()
    with serve(build_app(engine), "settings") as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#setting_sd_model_checkpoint input") as pg:
        yield pg


def config(server) -> dict:
    return json.loads((server.data / "config.json").read_text(encoding="utf-8"))


def choose(pg, elem_id: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown ``#elem_id``."""
    pg.locator(f"#{elem_id} input[role=combobox]").click()
    pg.locator("[role=listbox] [role=option]", has_text=option).first.click()


def dropdown_value(pg, elem_id: str) -> str:
    return pg.locator(f"#{elem_id} input[role=combobox]").input_value()


def test_settings_search_change_apply_writes_config(page, server):
    page.get_by_role("tab", name="Settings").click()
    search = page.locator("#settings_search")
    search.wait_for()
    assert page.locator("#setting_samples_save").is_visible()
    assert not page.locator("#setting_CLIP_stop_at_last_layers").is_visible()  # another section
    shot(page, "settings_tab.png")

    search.fill("clip skip")
    page.locator(".sd-settings-count", has_text="2 settings match").wait_for()  # "Clip skip", "Clip skip SDXL"
    assert page.locator("#setting_CLIP_stop_at_last_layers").is_visible()
    assert page.locator("#setting_sdxl_clip_l_skip").is_visible()
    assert not page.locator("#setting_samples_save").is_visible()
    clip = page.locator("#setting_CLIP_stop_at_last_layers input[type=number]")
    clip.fill("2")
    clip.press("Enter")
    shot(page, "settings_search.png")

    page.locator(".sd-settings-nav button", has_text="Saving images/grids").click()
    assert search.input_value() == "" and page.locator("#setting_samples_save").is_visible()
    page.locator("#setting_samples_format label", has_text="jpg").first.click()
    page.locator("#settings_submit").click()
    result = page.locator("#settings_result")
    result.filter(has_text="settings changed").wait_for(timeout=15_000)
    assert result.inner_text().strip() == "2 settings changed: samples_format, CLIP_stop_at_last_layers."
    saved = config(server)
    assert saved["samples_format"] == "jpg" and saved["CLIP_stop_at_last_layers"] == 2
    assert server.engine.options.get("CLIP_stop_at_last_layers") == 2
    shot(page, "settings_applied.png")

    # a setting that shows only after a restart says so
    page.locator(".sd-settings-nav button", has_text="User interface").click()
    page.locator("#setting_send_seed label").first.click()  # unchecks "Send seed"
    choose(page, "setting_gradio_theme", "Soft")
    page.locator("#settings_submit").click()
    result.filter(has_text="Restart the web UI").wait_for(timeout=15_000)
    assert result.inner_text().strip() == ("2 settings changed: gradio_theme, send_seed. "
                                           "Restart the web UI to see: gradio_theme.")
    assert config(server)["send_seed"] is False and config(server)["gradio_theme"] == "Soft"
    server.engine.options.set("gradio_theme", "Default")
    server.engine.options.set("send_seed", True)
    server.engine.options.set("samples_format", "png")
    server.engine.options.set("CLIP_stop_at_last_layers", 1)


def test_quicksettings_switch_checkpoint_and_failure(page, server, monkeypatch):
    engine = server.engine
    tried: list[str] = []  # every checkpoint file a load was started for, in order
    load_checkpoint = engine.load_checkpoint

    def counting_load(info, **kwargs):
        tried.append(Path(info.filename).name)
        return load_checkpoint(info, **kwargs)

    monkeypatch.setattr(engine, "load_checkpoint", counting_load)
    start = engine.checkpoint_info.title
    assert dropdown_value(page, "setting_sd_model_checkpoint") == start
    shot(page, "quicksettings.png")

    choose(page, "setting_sd_model_checkpoint", "b.safetensors")
    status = page.locator("#quicksettings_status")
    status.filter(has_text="Loaded b.safetensors").wait_for(timeout=30_000)
    loaded = engine.checkpoint_info.title
    assert loaded.startswith("b.safetensors [") and dropdown_value(page, "setting_sd_model_checkpoint") == loaded
    assert config(server)["sd_model_checkpoint"] == loaded

    choose(page, "setting_sd_model_checkpoint", "broken.safetensors")
    status.filter(has_text="Could not load").wait_for(timeout=30_000)
    text = status.locator(".sd-quick-error").inner_text()  # Gradio's own "processing | 0.5s" may sit beside it
    assert text.startswith("Could not load broken.safetensors: Cannot load ")
    assert "corrupt or truncated safetensors file" in text and "\n" not in text.strip()
    assert status.locator(".sd-quick-error").count() == 1
    page.wait_for_function("v => document.querySelector('#setting_sd_model_checkpoint input').value === v", arg=loaded)
    # The failed load put the previous model back; the dropdown may show it a moment before the reload ends.
    deadline = time.monotonic() + 30
    while getattr(engine.checkpoint_info, "title", None) != loaded and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.checkpoint_info.title == loaded and config(server)["sd_model_checkpoint"] == loaded
    shot(page, "quicksettings_error.png")

    # One pick is one load: Gradio's dropdown reports a pick twice, and the broken file must not be tried again.
    # The bar's events run one after another, so once the switch back to the start model is reported, any
    # second attempt for an earlier pick has already run.
    choose(page, "setting_sd_model_checkpoint", start.split(" [")[0])
    status.filter(has_text=f"Loaded {start}").wait_for(timeout=30_000)
    assert tried == ["b.safetensors", "broken.safetensors", "b.safetensors", "a.safetensors"]
    assert engine.checkpoint_info.title == start

    # the extra networks browser announces a checkpoint switch it made: the bar catches up
    engine.options.set("sd_vae", "None")
    page.evaluate("document.dispatchEvent(new CustomEvent('sd-extra-networks:checkpoint', {detail: {}}))")
    page.wait_for_function("() => document.querySelector('#setting_sd_vae input').value === 'None'")
    engine.options.set("sd_vae", "Automatic")


def test_extras_upscale_shows_the_bigger_image(page, server, tmp_path):
    src = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8))
    src.save(tmp_path / "small.png")
    page.get_by_role("tab", name="Extras").click()
    page.locator("#extras_image input[type=file]").set_input_files(str(tmp_path / "small.png"))
    page.locator("#extras_image img").first.wait_for(timeout=15_000)
    choose(page, "extras_upscaler_1", "Lanczos")
    factor = page.locator("#extras_upscaling_resize input[type=number]")
    factor.fill("2")
    factor.press("Enter")
    page.locator("#extras_generate").click()
    page.locator("#html_info_extras", has_text="Postprocess upscaler: Lanczos").wait_for(timeout=30_000)
    img = page.locator("#extras_gallery img").first
    img.wait_for()
    page.wait_for_function("() => { const i = document.querySelector('#extras_gallery img'); "
                           "return i && i.complete && i.naturalWidth > 0; }")
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [80, 48]
    assert "Postprocess upscale by: 2" in page.locator("#html_info_extras").inner_text()
    saved = list((server.data / "outputs" / "extras-images").glob("*.png"))
    assert len(saved) == 1 and Image.open(saved[0]).size == (80, 48)
    shot(page, "extras_upscaled.png")

    choose(page, "extras_upscaler_1", "None")
    page.get_by_role("tab", name="Batch Process").click()
    page.locator("#extras_generate").click()
    page.locator("#extras_status", has_text="choose one or more image files first").wait_for(timeout=15_000)
