"""The whole page, as webui.py serves it, in a real browser (Playwright + Debian's chromium).

One app over a data folder with a tiny SD1 checkpoint and a few LoRA files; each test drives the
page the way a user does and checks pixels, field values and files. Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from tests import tiny_models
from tests.browser_harness import open_page, require_playwright, serve, set_number, shot
from tools import demo_extra_networks as demo

require_playwright()  # the whole module skips where Playwright or Chromium is missing


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("page-browser")
    demo.write_sample_data(data, 6)
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=5), ckpt_dir / "tiny-page.safetensors", "sd1")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=6), ckpt_dir / "tiny-64.safetensors", "sd1",
                                  metadata={"modelspec.resolution": "64x64"})  # native size 64, as the demo model
    args = cmd_args.parse_args(["--data-dir", str(data)], environ={})
    engine = webui.build_engine(args)
    engine.options.set("sd_model_checkpoint", "tiny-page.safetensors")  # the sample data's other model is a stub
    engine.ensure_model()
    app = webui.create_app(engine, args)
    with serve(app, "page", start_timeout=120) as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1100}) as pg:
        yield pg


def field(pg, elem_id: str) -> str:
    return pg.locator(f"#{elem_id} textarea, #{elem_id} input").first.input_value()


def test_generate_shows_the_image_and_its_infotext(page, server):
    page.locator("#txt2img_prompt textarea").fill("a red circle, blue background")
    page.locator("#txt2img_neg_prompt textarea").fill("blurry")
    from modules.page import routes as ui_routes

    want = ui_routes.count_tokens(server.engine, "a red circle, blue background", 20)["text"]
    assert want == "6/75"
    page.wait_for_function("w => document.querySelector('#txt2img_prompt_token_counter')?.textContent === w", arg=want)
    for elem, value in (("txt2img_steps", 3), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 1234),
                        ("txt2img_batch_count", 2)):
        set_number(page, elem, value)
    page.locator("#txt2img_prompt textarea").press("Control+Enter")
    page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length >= 3", timeout=60_000)
    page.locator("#html_info_txt2img .sd-infotext").wait_for()
    info = page.locator("#html_info_txt2img").inner_text()
    assert info.startswith("a red circle, blue background\nNegative prompt: blurry\nSteps: 3, Sampler: DPM++ 2M")
    assert "Seed: 1234, Size: 64x64, Model hash: " in info and "Model: tiny-page" in info
    assert "Time taken:" in page.locator("#html_log_txt2img").inner_text()
    assert not page.locator("#txt2img_results .sd-progress-box").count()  # progress bar gone at the end
    shot(page, "page_txt2img_generated.png")

    # The image shown is the one the engine made: same seed through the engine gives the same pixels.
    src = page.locator("#txt2img_gallery img").nth(1).get_attribute("src")  # the batch's grid comes first
    png = page.request.get(src).body()
    from io import BytesIO

    from PIL import Image

    shown = Image.open(BytesIO(png))
    assert shown.size == (64, 64)
    assert shown.info.get("parameters", "").startswith("a red circle")  # the download keeps the infotext
    saved = sorted((server.data / "outputs" / "txt2img-images").rglob("*.png"))
    assert saved and any(Image.open(p).convert("RGB").tobytes() == shown.convert("RGB").tobytes() for p in saved)

    page.locator("#txt2img_reuse_seed").click()
    page.wait_for_function("() => document.querySelector('#txt2img_seed input').value === '1234'")


def test_lora_card_click_adds_and_removes_the_tag_and_edit_writes_the_sidecar(page, server):
    page.get_by_role("tab", name="Lora", exact=True).first.click()
    root = page.locator("#txt2img_lora .sd-en")
    root.locator(".sd-en-count").wait_for(timeout=10_000)
    root.locator(".sd-en-search").fill("lora_00003")
    page.wait_for_function("() => document.querySelector('#txt2img_lora .sd-en-count').textContent.startsWith('1 of')")
    shot(page, "page_lora_tab.png")
    page.locator("#txt2img_prompt textarea").fill("")
    root.locator(".sd-en-card").first.click()
    assert field(page, "txt2img_prompt") == "<lora:lora-alias-00003:1>"
    root.locator(".sd-en-card").first.click()
    assert field(page, "txt2img_prompt") == ""

    card = root.locator(".sd-en-card").first
    card.hover()
    card.locator(".sd-en-edit").click()
    dialog = page.locator("dialog.sd-en-dialog")
    dialog.wait_for()
    page.wait_for_function("() => !document.querySelector('dialog.sd-en-dialog .sd-en-save').disabled")
    dialog.locator('[data-field="preferred weight"]').fill("0.6")
    dialog.locator(".sd-en-save").click()
    dialog.wait_for(state="detached")
    sidecar = next((server.data / "models" / "Lora").rglob("lora_00003.json"))
    assert json.loads(sidecar.read_text(encoding="utf-8"))["preferred weight"] == 0.6
    root.locator(".sd-en-card").first.click()
    assert field(page, "txt2img_prompt") == "<lora:lora-alias-00003:0.6>"


def test_png_info_of_a_real_a1111_image_fills_txt2img(page, real_fixtures):
    page.get_by_role("tab", name="PNG Info", exact=True).click()
    src = real_fixtures / "images" / "sdparsers_automatic1111_cropped.png"
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(src))
    page.locator("#pnginfo_generation_info").filter(has_text="photo of a duck").wait_for(timeout=20_000)
    shot(page, "page_pnginfo.png")
    page.locator("#pnginfo_send_to_txt2img").click()
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === 'photo of a duck'",
                           timeout=20_000)
    assert field(page, "txt2img_neg_prompt") == "monochrome"
    page.wait_for_function("() => document.querySelector('#txt2img_steps input').value === '15'")
    assert field(page, "txt2img_cfg_scale") == "5"
    assert field(page, "txt2img_seed") == "235284042"
    assert (field(page, "txt2img_width"), field(page, "txt2img_height")) == ("512", "400")
    assert page.locator("#txt2img_sampling input").input_value() == "UniPC"
    assert page.get_by_role("tab", name="txt2img", exact=True).get_attribute("aria-selected") == "true"


def test_interrupt_stops_a_long_generation_and_keeps_finished_images(page, server):
    page.locator("#txt2img_prompt textarea").fill("a long run")
    for elem, value in (("txt2img_steps", 150), ("txt2img_width", 512), ("txt2img_height", 512),
                        ("txt2img_batch_count", 50), ("txt2img_seed", 7)):
        set_number(page, elem, value)
    page.locator("#txt2img_generate").click()
    page.locator("#txt2img_interrupt").wait_for(state="visible")
    page.wait_for_function(
        "() => /Step [1-9]/.test(document.querySelector('#txt2img_results .sd-progress-text')?.textContent || '')",
        timeout=60_000)
    # The live preview (cheap latent -> RGB) arrives every show_progress_every_n_steps steps.
    every = int(server.engine.options.get("show_progress_every_n_steps"))
    assert server.engine.options.get("live_previews_enable") and every > 0
    page.locator("#txt2img_results .sd-live-preview img").wait_for(timeout=60_000)
    assert page.locator("#txt2img_results .sd-live-preview img").get_attribute("src").startswith("data:image/")
    shot(page, "page_txt2img_progress.png")
    started = time.monotonic()
    page.locator("#txt2img_interrupt").click()
    page.locator("#html_log_txt2img").filter(has_text="Interrupted").wait_for(timeout=30_000)
    assert time.monotonic() - started < 30
    assert page.locator("#txt2img_gallery img").count() < 50
    assert not server.engine.state.active
    page.locator("#txt2img_interrupt").wait_for(state="hidden")


def test_every_main_tab_renders(page):
    for title, marker in (("img2img", "#img2img_prompt textarea"), ("Extras", "#tab_extras"),
                          ("Settings", "#settings_submit"), ("Extensions", "#tab_extensions")):
        page.get_by_role("tab", name=title, exact=True).first.click()
        page.locator(marker).first.wait_for(state="visible", timeout=20_000)
        shot(page, f"page_{title.lower().replace(' ', '_')}.png")


def test_width_and_height_follow_the_loaded_models_native_size(page, server):
    """An untouched size follows the model (512 px SD1 -> a 64 px model, as the demo model, and back); a size
    the user chose stays."""
    assert server.engine.native_size() == (512, 512)
    assert field(page, "txt2img_width") == "512"
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    assert field(page, "img2img_height") == "512"
    set_number(page, "img2img_width", 320)

    def switch(name: str) -> None:
        page.locator("#setting_sd_model_checkpoint input[role=combobox]").click()
        page.locator("[role=listbox] [role=option]", has_text=name).first.click()
        page.locator("#quicksettings_status").filter(has_text=f"Loaded {name}").wait_for(timeout=30_000)

    try:
        switch("tiny-64.safetensors")
        page.wait_for_function("() => document.querySelector('#txt2img_width input').value === '64'", timeout=10_000)
        assert [field(page, f) for f in ("txt2img_width", "txt2img_height", "img2img_width", "img2img_height")] == \
            ["64", "64", "320", "512"]  # a chosen size stays whole
        page.reload()  # a new page starts at the loaded model's size
        page.locator("#txt2img_prompt textarea").wait_for()
        page.wait_for_function("() => document.querySelector('#txt2img_width input').value === '64'", timeout=10_000)
        page.get_by_role("tab", name="img2img", exact=True).first.click()
        assert field(page, "img2img_width") == "64"
        switch("tiny-page.safetensors")
        page.wait_for_function("() => document.querySelector('#txt2img_width input').value === '512'", timeout=10_000)
        assert field(page, "img2img_height") == "512"
    finally:
        server.engine.options.set("sd_model_checkpoint", "tiny-page.safetensors")
        server.engine.ensure_model()
