"""The Refiner accordion, Soft inpainting and Inpaint sketch's mask transparency, in Debian's chromium (issue 18).

The app as webui.py serves it over the shipped 64 px demo model and a copy with other UNet weights (the refiner).
Each test drives the page as a user does and compares the gallery's pictures with what the Engine gives for the same
request, by pixels. Screenshots: tests/artifacts/.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from modules.core import infotext
from modules.core.request import GenerationRequest
from modules.models.safe_load import read_safetensors_metadata
from tests.browser_harness import (draw_stroke, gallery_images, open_page, require_playwright, serve, set_number, shot,
                                   upload_image, wait_done, write_demo_checkpoints)

require_playwright()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("refiner-browser")
    ckpt_dir = data / "models" / "Stable-diffusion"
    write_demo_checkpoints(ckpt_dir)
    args = cmd_args.parse_args(["--data-dir", str(data), "--api"], environ={})
    engine = webui.build_engine(args)
    engine.options.set("sd_model_checkpoint", "demo.safetensors")
    engine.ensure_model()
    app = webui.create_app(engine, args)
    with serve(app, "refiner", start_timeout=120) as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)
    from modules.scripting import runtime

    runtime.unbind(engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1100}) as pg:
        yield pg


def generate(pg, tab: str) -> None:
    """Generate and wait for this run's picture (the log still shows the last run's time until it is done)."""
    gallery = pg.locator(f"#{tab}_gallery img")
    before = gallery.first.get_attribute("src") if gallery.count() else None
    pg.locator(f"#{tab}_generate").click()
    if before is not None:
        pg.wait_for_function(f"(b) => {{ const i = document.querySelector('#{tab}_gallery img');"
                             f" return i && i.getAttribute('src') !== b; }}", arg=before, timeout=120_000)
    wait_done(pg, tab, timeout=120_000)


def choose(pg, elem_id: str, option: str) -> None:
    box = pg.locator(f"#{elem_id} input").first
    box.click()
    pg.get_by_role("option", name=option, exact=True).locator("visible=true").first.click()


def choose_prefix(pg, elem_id: str, prefix: str) -> None:
    import re

    pg.locator(f"#{elem_id} input").first.click()
    pg.get_by_role("option", name=re.compile("^" + re.escape(prefix))).locator("visible=true").first.click()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def engine_picture(engine, **fields) -> np.ndarray:
    req = GenerationRequest(do_not_save_samples=True, do_not_save_grid=True, **fields)
    return pixels(engine.generate(req).images[0])


def _title(server, prefix: str) -> str:
    return next(i.title for i in server.engine.available_checkpoints() if i.title.startswith(prefix))


PROMPT = "a red circle on a blue background"


def test_refiner_accordion_switches_model_mid_run_and_pastes_back(page, server):
    page.locator("#txt2img_prompt textarea").fill(PROMPT)
    for elem, v in (("txt2img_steps", 8), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 21)):
        set_number(page, elem, v)
    assert not page.locator("#txt2img_checkpoint").is_visible()
    page.locator("#txt2img_enable input").check()
    other = _title(server, "demo-other")
    choose(page, "txt2img_checkpoint", other)
    set_number(page, "txt2img_switch_at", 0.5)
    shot(page, "refiner_accordion.png")
    generate(page, "txt2img")
    info = page.locator("#html_info_txt2img").inner_text()
    params = infotext.parse_generation_parameters(info.strip())
    assert params["Refiner"].startswith("demo-other [") and params["Refiner switch at"] == "0.5"
    assert params["Model"] == "demo"
    shown = pixels(gallery_images(page, "txt2img")[0])
    common = dict(prompt=PROMPT, steps=8, width=64, height=64, seed=21, sampler_name="DPM++ 2M")
    assert np.array_equal(shown, engine_picture(server.engine, refiner_checkpoint=other, refiner_switch_at=0.5,
                                                **common))
    assert np.abs(shown - engine_picture(server.engine, **common)).mean() > 0.5  # the refiner changed the picture

    # untick: the same page generates the plain picture; paste the refiner's infotext: ticked and filled again
    page.locator("#txt2img_enable input").uncheck()
    page.locator("#txt2img_prompt textarea").fill(info.strip())
    page.locator("#txt2img_paste").click()
    page.wait_for_function(f"() => document.querySelector('#txt2img_prompt textarea').value === {PROMPT!r}")
    page.locator("#txt2img_checkpoint").wait_for(state="visible")
    assert page.locator("#txt2img_enable input").is_checked()
    assert page.locator("#txt2img_checkpoint input").first.input_value() == other
    assert page.locator("#txt2img_switch_at input[type=number]").input_value() == "0.5"


def _img2img_subtab(pg, name: str) -> None:
    pg.get_by_role("tab", name="img2img", exact=True).first.click()
    pg.locator("#mode_img2img").get_by_role("tab", name=name, exact=True).click()


def _img2img_settings(pg, denoising: float) -> None:
    for elem, v in (("img2img_steps", 8), ("img2img_width", 64), ("img2img_height", 64), ("img2img_seed", 5),
                    ("img2img_denoising_strength", denoising), ("img2img_mask_blur", 2)):
        set_number(pg, elem, v)


def _source_and_mask(tmp_path):
    from PIL import ImageDraw

    src = Image.new("RGB", (64, 64), (30, 60, 200))
    ImageDraw.Draw(src).ellipse((20, 20, 44, 44), fill=(220, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    # small enough that the blurred mask stays off the corner latents (any mask above 0 there lets the
    # generated latent through at low σ, as in A1111)
    ImageDraw.Draw(mask).rectangle((28, 28, 36, 36), fill=255)
    src.save(tmp_path / "src.png")
    mask.save(tmp_path / "mask.png")
    return src, mask


SOFT_DEFAULTS = [1.0, 0.5, 4.0, 0.0, 0.5, 2.0]


def test_soft_inpainting_sits_in_the_inpaint_options_blends_and_pastes_back(page, server, tmp_path):
    from modules.scripting.host import ScriptHost

    src, mask = _source_and_mask(tmp_path)
    _img2img_subtab(page, "Inpaint upload")
    upload_image(page, "#img_inpaint_base", tmp_path / "src.png")
    upload_image(page, "#img_inpaint_mask", tmp_path / "mask.png")
    controls = page.locator("#img2img_inpaint_controls").first
    controls.wait_for(state="visible")
    toggle = controls.locator("#soft_inpainting_enabled input")  # A1111 shows it among the inpaint options
    assert toggle.is_visible() and not toggle.is_checked()
    _img2img_settings(page, 0.75)
    page.locator("#img2img_prompt textarea").fill("a yellow star on a blue background")
    generate(page, "img2img")
    plain = pixels(gallery_images(page, "img2img")[0])

    toggle.check()
    page.locator("#mask_blend_scale").wait_for(state="visible")
    shot(page, "soft_inpainting.png")
    generate(page, "img2img")
    text = page.locator("#html_info_img2img").inner_text().strip()
    params = infotext.parse_generation_parameters(text)
    assert params["Soft inpainting enabled"] == "True" and params["Soft inpainting preservation strength"] == "0.5"
    soft_px = pixels(gallery_images(page, "img2img")[0])
    assert np.abs(soft_px - plain).mean() > 2.0
    assert np.abs(soft_px - pixels(src))[:6, :6].max() <= 2  # far from the mask: the original

    # the Engine gives the same picture for the same request through the script layer (no generation in the page)
    req = GenerationRequest(prompt="a yellow star on a blue background", steps=8, width=64, height=64, seed=5,
                            sampler_name="DPM++ 2M", denoising_strength=0.75, init_images=[src], mask=mask,
                            mask_blur_x=2, mask_blur_y=2, inpainting_fill=1, inpaint_full_res=False,
                            inpaint_full_res_padding=32, do_not_save_samples=True, do_not_save_grid=True,
                            alwayson_scripts={"Soft Inpainting": {"args": [True, *SOFT_DEFAULTS]}})
    assert np.array_equal(soft_px, pixels(ScriptHost.for_engine(server.engine).generate(req).images[0]))

    # pasting an infotext with other values ticks it and sets them
    toggle.uncheck()
    page.locator("#img2img_prompt textarea").fill(text.replace("Soft inpainting difference threshold: 0.5",
                                                               "Soft inpainting difference threshold: 1.25"))
    page.locator("#img2img_paste").click()
    page.wait_for_function("() => document.querySelector('#composite_difference_threshold input[type=number]')"
                           "?.value === '1.25'")
    assert toggle.is_checked()


def test_merger_metadata_editor_and_copy_config(page, server):
    import json

    ckpt_dir = server.data / "models" / "Stable-diffusion"
    (ckpt_dir / "demo-other.yaml").write_text("model: {}\n")  # B's config, which "Don't" must not copy
    page.get_by_role("tab", name="Checkpoint Merger", exact=True).click()
    # by prefix: the lists were made when the page was built, before the refiner test hashed demo-other
    choose_prefix(page, "modelmerger_primary_model_name", "demo.safetensors")
    choose_prefix(page, "modelmerger_secondary_model_name", "demo-other.safetensors")
    page.locator("#modelmerger_custom_name textarea, #modelmerger_custom_name input").first.fill("noted")
    page.locator("#modelmerger_config_method").get_by_label("Don't", exact=True).check()
    page.locator("#modelmerger_metadata_editor").get_by_text("Metadata", exact=True).first.click()
    page.locator("#modelmerger_read_metadata").click()
    box = page.locator("#modelmerger_metadata_json textarea")
    page.wait_for_function("() => document.querySelector('#modelmerger_metadata_json textarea')"
                           ".value.includes('modelspec.resolution')")
    read = json.loads(box.input_value())
    assert read["modelspec.resolution"] == "64x64"
    box.fill(json.dumps({**read, "note": "made in the browser"}))
    shot(page, "merger_metadata.png")
    page.locator("#modelmerger_merge").click()
    page.locator("#modelmerger_result").filter(has_text="Checkpoint saved to").wait_for(timeout=120_000)
    meta = read_safetensors_metadata(ckpt_dir / "noted.safetensors")
    recipe = json.loads(meta["sd_merge_recipe"])
    assert meta["note"] == "made in the browser" and recipe["config_source"] == "Don't"
    assert not (ckpt_dir / "noted.yaml").exists()


def test_inpaint_sketch_mask_transparency_lets_the_picture_through(page, server, tmp_path):
    src = Image.new("RGB", (64, 64), (20, 40, 160))
    src.save(tmp_path / "blue.png")
    _img2img_subtab(page, "Inpaint")
    assert not page.locator("#img2img_mask_alpha").is_visible()  # only Inpaint sketch has it
    _img2img_subtab(page, "Inpaint sketch")
    page.locator("#img2img_mask_alpha").wait_for(state="visible")
    upload_image(page, "#inpaint_sketch", tmp_path / "blue.png")
    draw_stroke(page, "#inpaint_sketch", [(0.3, 0.5), (0.7, 0.5)])  # a white stroke across the middle
    for elem, v in (("img2img_steps", 4), ("img2img_width", 64), ("img2img_height", 64), ("img2img_seed", 9),
                    ("img2img_denoising_strength", 0.3), ("img2img_mask_blur", 0)):
        set_number(page, elem, v)
    page.locator("#img2img_prompt textarea").fill("a white stripe")
    results = {}
    for alpha in (0, 70):
        set_number(page, "img2img_mask_alpha", alpha)
        if alpha:
            shot(page, "inpaint_sketch_transparency.png")
        generate(page, "img2img")
        results[alpha] = np.asarray(gallery_images(page, "img2img")[0].convert("L"), dtype=float)
    stroke = (slice(29, 35), slice(24, 40))
    background = results[0][:8, :8].mean()
    # opaque: the stroke is white; 70 % transparent: mostly the blue picture shows through it
    assert results[0][stroke].mean() > background + 60
    assert background + 5 < results[70][stroke].mean() < results[0][stroke].mean() - 40
