"""PNG Info tab and "Send to" in a real browser (Playwright + the system Chromium) on a small Blocks app.

A real A1111 PNG is uploaded, its parameters are shown, "Send to txt2img" fills the txt2img fields and switches
the tab, "Send to img2img" also copies the image. Needs `pip install playwright` and /usr/bin/chromium.
Screenshots go to tests/artifacts/.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import browser_harness
from tests.browser_harness import open_page, require_playwright, serve
from tools import demo_extra_networks as demo

WEBUI_PNG = "images/sdmetadata_sd-webui.png"

require_playwright()  # the whole module skips where Playwright or Chromium is missing
shot = partial(browser_harness.shot, full_page=True)  # this file keeps whole-page screenshots


def build_blocks(engine):
    import gradio as gr

    from modules.core import samplers
    from modules.page.paste import connect_paste
    from modules.page.pnginfo import create_pnginfo_tab

    sampler_names = [s.name for s in samplers.SAMPLERS]
    schedule_labels = [s.label for s in samplers.SCHEDULERS]
    with gr.Blocks(title="PNG Info test") as blocks:
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                t2i = {
                    "prompt": gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt"),
                    "negative_prompt": gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt"),
                    "sampler_name": gr.Dropdown(sampler_names, value="Euler", label="Sampling method",
                                                elem_id="txt2img_sampling"),
                    "scheduler": gr.Dropdown(schedule_labels, value="Uniform", label="Schedule type",
                                             elem_id="txt2img_scheduler"),
                    "steps": gr.Slider(1, 150, value=5, step=1, label="Sampling steps", elem_id="txt2img_steps"),
                    "width": gr.Slider(64, 2048, value=512, step=8, label="Width", elem_id="txt2img_width"),
                    "height": gr.Slider(64, 2048, value=512, step=8, label="Height", elem_id="txt2img_height"),
                    "cfg_scale": gr.Slider(1, 30, value=3, step=0.5, label="CFG Scale", elem_id="txt2img_cfg_scale"),
                    "seed": gr.Number(value=-1, precision=0, label="Seed", elem_id="txt2img_seed"),
                    "enable_hr": gr.Checkbox(value=True, label="Hires. fix", elem_id="txt2img_enable_hr"),
                    "override_settings": gr.JSON(label="Override settings", elem_id="txt2img_override_settings"),
                }
                t2i_status = gr.Markdown(elem_id="txt2img_paste_status")
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                with gr.Tabs(elem_id="mode_img2img") as img2img_tabs:
                    with gr.Tab("img2img", id="img2img_sub", elem_id="img2img_img2img_tab"):
                        init_image = gr.Image(label="Image for img2img", type="pil", elem_id="img2img_image")
                    with gr.Tab("Inpaint", id="inpaint", elem_id="img2img_inpaint_tab"):
                        editor = gr.ImageEditor(label="Image for inpainting", type="pil", elem_id="img2maskimg")
                        editor_size = gr.Textbox(label="Background size", elem_id="inpaint_background_size")
                        gr.Button("Check", elem_id="inpaint_check").click(
                            lambda v: "x".join(map(str, v["background"].size)) if v and v.get("background") else "none",
                            inputs=[editor], outputs=[editor_size])
                i2i = {
                    "prompt": gr.Textbox(label="Prompt", lines=3, elem_id="img2img_prompt"),
                    "steps": gr.Slider(1, 150, value=5, step=1, label="Sampling steps", elem_id="img2img_steps"),
                    "inpainting_fill": gr.Radio(["fill", "original", "latent noise", "latent nothing"], value="fill",
                                                type="index", label="Masked content", elem_id="img2img_fill"),
                }
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras_image = gr.Image(label="Source", type="pil", elem_id="extras_image")
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png = create_pnginfo_tab(engine)
        connect_paste(png.send_to_txt2img, png.infotext, t2i, engine, False, tabs=tabs, tab_id="txt2img",
                      status=t2i_status)
        connect_paste(png.send_to_img2img, png.infotext, i2i, engine, True, tabs=tabs, tab_id="img2img",
                      image_source=png.image, image_target=init_image, extra_tabs=[(img2img_tabs, "img2img_sub")])
        connect_paste(png.send_to_inpaint, png.infotext, i2i, engine, True, tabs=tabs, tab_id="img2img",
                      image_source=png.image, image_target=editor, extra_tabs=[(img2img_tabs, "inpaint")])
        connect_paste(png.send_to_extras, png.infotext, {}, engine, True, tabs=tabs, tab_id="extras",
                      image_source=png.image, image_target=extras_image)
    return blocks


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import gradio as gr
    from fastapi import FastAPI

    data = tmp_path_factory.mktemp("pnginfo-browser")
    for sub in ("Lora", "Stable-diffusion"):
        (data / "models" / sub).mkdir(parents=True)
    engine = demo.make_engine(data)
    app = FastAPI()
    gr.mount_gradio_app(app, build_blocks(engine), path="/")
    with serve(app, "pnginfo") as url:
        yield SimpleNamespace(url=url, data=data)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea") as pg:
        yield pg


def upload(pg, path: Path) -> None:
    pg.click("button[role=tab]:has-text('PNG Info')")
    pg.wait_for_selector("#pnginfo_image")
    pg.set_input_files("#pnginfo_image input[type=file]", str(path))


def value(pg, selector: str) -> str:
    return pg.eval_on_selector(selector, "e => e.value")


def test_upload_real_a1111_png_and_send_to_txt2img(page, real_fixtures):
    upload(page, real_fixtures / WEBUI_PNG)
    info = page.locator("#pnginfo_generation_info")
    info.locator("text=Seed: 3782896554").wait_for(timeout=20_000)
    text = info.inner_text()
    assert "hatsune miku, テスト" in text
    assert "Model: waiIllustriousSDXL_v160, Version: v1.10.1" in text
    shot(page, "pnginfo_uploaded.png")

    page.click("#pnginfo_send_to_txt2img")
    page.wait_for_function("() => document.querySelector('#txt2img_seed input')?.value === '3782896554'",
                           timeout=20_000)
    assert page.locator("#tab_txt2img").is_visible()
    assert value(page, "#txt2img_prompt textarea") == (
        "general, masterpiece, best quality, amazing quality,\n1girl, solo, hatsune miku, テスト\n")
    assert value(page, "#txt2img_neg_prompt textarea") == "bad quality, worst quality, worst detail, sketch, censor,\n"
    assert value(page, "#txt2img_sampling input") == "DPM++ 2M"
    assert value(page, "#txt2img_scheduler input") == "Karras"
    assert value(page, "#txt2img_steps input[type=number]") == "20"
    assert value(page, "#txt2img_width input[type=number]") == "1024"
    assert value(page, "#txt2img_height input[type=number]") == "1024"
    assert value(page, "#txt2img_cfg_scale input[type=number]") == "7"
    assert page.is_checked("#txt2img_enable_hr input") is False
    status = page.locator("#txt2img_paste_status").inner_text()
    assert "Model hash: no local checkpoint with hash 45a21ea00a (waiIllustriousSDXL_v160)" in status
    shot(page, "pnginfo_sent_to_txt2img.png")


def test_send_to_img2img_copies_the_image(page, real_fixtures):
    upload(page, real_fixtures / WEBUI_PNG)
    page.locator("#pnginfo_generation_info").locator("text=Seed: 3782896554").wait_for(timeout=20_000)
    page.click("#pnginfo_send_to_img2img")
    page.wait_for_function("() => document.querySelector('#img2img_steps input[type=number]')?.value === '20'",
                           timeout=20_000)
    page.wait_for_selector("#img2img_image img", timeout=20_000)
    assert value(page, "#img2img_prompt textarea").startswith("general, masterpiece")
    assert page.is_checked("#img2img_fill input[value=original]")
    shot(page, "pnginfo_sent_to_img2img.png")


def test_send_to_inpaint_and_extras(page, real_fixtures):
    upload(page, real_fixtures / WEBUI_PNG)
    page.locator("#pnginfo_generation_info").locator("text=Seed: 3782896554").wait_for(timeout=20_000)
    page.click("#pnginfo_send_to_inpaint")
    page.wait_for_selector("#inpaint_check", state="visible", timeout=20_000)
    page.wait_for_function("() => document.querySelector('#img2img_steps input[type=number]')?.value === '20'",
                           timeout=20_000)
    page.click("#inpaint_check")
    page.wait_for_function("() => document.querySelector('#inpaint_background_size textarea')?.value === '1024x1024'",
                           timeout=20_000)
    shot(page, "pnginfo_sent_to_inpaint.png")
    page.click("button[role=tab]:has-text('PNG Info')")
    page.click("#pnginfo_send_to_extras")
    page.wait_for_selector("#extras_image img", state="visible", timeout=20_000)
    shot(page, "pnginfo_sent_to_extras.png")


def test_webp_with_exif_user_comment(page, real_fixtures, tmp_path):
    from PIL import Image

    from modules.core.image_files import exif_user_comment
    from modules.page.paste import read_generation_parameters

    text, _ = read_generation_parameters(str(real_fixtures / WEBUI_PNG))
    path = tmp_path / "a1111.webp"
    Image.open(real_fixtures / WEBUI_PNG).resize((256, 256)).save(path, "WEBP", exif=exif_user_comment(text))
    upload(page, path)
    page.locator("#pnginfo_generation_info").locator("text=Seed: 3782896554").wait_for(timeout=20_000)
    page.click("#pnginfo_send_to_txt2img")
    page.wait_for_function("() => document.querySelector('#txt2img_seed input')?.value === '3782896554'",
                           timeout=20_000)
    assert value(page, "#txt2img_width input[type=number]") == "1024"


def test_broken_image_gives_one_readable_message(page, tmp_path):
    junk = tmp_path / "broken.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing a PNG needs")
    upload(page, junk)
    message = page.locator("#pnginfo_generation_info .pnginfo-error")
    message.wait_for(timeout=20_000)
    assert message.inner_text() == "Cannot read this image: broken.png: not an image format that can be read " \
                                   "(PNG, JPEG and WEBP can)"
    shot(page, "pnginfo_broken.png")


def test_other_text_chunks_show_as_a_table(page, tmp_path):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red fox\nSteps: 12, Sampler: Euler, CFG scale: 6, Seed: 42, Size: 64x64")
    info.add_text("Software", "some <b>editor</b>")
    path = tmp_path / "chunks.png"
    Image.new("RGB", (64, 64), "orange").save(path, "PNG", pnginfo=info)
    upload(page, path)
    table = page.locator("#pnginfo_generation_info table.pnginfo-items")
    table.wait_for(timeout=20_000)
    assert table.locator("th").all_inner_texts() == ["Software"]
    assert table.locator("td").all_inner_texts() == ["some <b>editor</b>"]  # shown as text, never as markup
    parameters = page.locator("#pnginfo_generation_info pre.pnginfo-parameters").inner_text()
    assert parameters.startswith("a red fox\nSteps: 12")
    shot(page, "pnginfo_text_chunks.png")
