"""What a new A1111 user tripped over, fixed, and the parts A1111's page has that ours lacked (issue 18).

The whole app as webui.py serves it, over the shipped 64 px demo model, in Debian's chromium. Every test drives
the page as a user does and checks the page and the pictures the engine made. Screenshots: tests/artifacts/.
"""
from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests import tiny_models
from tests.browser_harness import (draw_stroke, gallery_images, open_page, require_playwright, serve, set_number, shot,
                                   upload_image, wait_done, wait_image_shown, write_demo_checkpoints)

require_playwright()  # the whole module skips where Playwright or Chromium is missing


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("parity-browser")
    ckpt_dir = data / "models" / "Stable-diffusion"
    # The shipped 64 px demo model: its VAE is trained, so img2img keeps a picture and pixels can be judged.
    write_demo_checkpoints(ckpt_dir)
    from tests import network_files

    network_files.save_safetensors(network_files.kohya_lora(tiny_models.tiny_sd1(seed=5), seed=1),
                                   data / "models" / "Lora" / "ink.safetensors")
    args = cmd_args.parse_args(["--data-dir", str(data), "--api"], environ={})
    engine = webui.build_engine(args)
    engine.options.set("sd_model_checkpoint", "demo.safetensors")
    engine.ensure_model()
    app = webui.create_app(engine, args)
    with serve(app, "parity", start_timeout=120) as url:
        yield SimpleNamespace(url=url, data=data, engine=engine)


@pytest.fixture()
def page(server, browser):
    with open_page(browser, server.url, "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1100}) as pg:
        yield pg


def value(pg, selector: str) -> str:
    return pg.locator(selector).first.input_value()


def test_docs_work_offline(page, server):
    """/docs is Swagger UI from the swagger-ui-bundle package: nothing is fetched from another host."""
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(server.url + "docs")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=20_000)
    assert page.locator(".swagger-ui .opblock", has_text="/sdapi/v1/txt2img").count() >= 1
    assert outside == []
    shot(page, "parity_docs_offline.png")


def test_batch_grid_is_first_in_the_gallery_unless_the_setting_is_off(page, server):
    page.locator("#txt2img_prompt textarea").fill("a grid")
    for elem, v in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 11),
                    ("txt2img_batch_count", 2), ("txt2img_batch_size", 2)):
        set_number(page, elem, v)
    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img")
    page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length === 5")
    images = gallery_images(page, "txt2img")
    assert images[0].size == (128, 128) and all(im.size == (64, 64) for im in images[1:])
    grid = np.asarray(images[0].convert("RGB"))
    for i, im in enumerate(images[1:]):  # the grid's cells are the four pictures, in order
        y, x = divmod(i, 2)
        assert np.array_equal(grid[y * 64:(y + 1) * 64, x * 64:(x + 1) * 64], np.asarray(im.convert("RGB")))
    shot(page, "parity_grid_in_gallery.png")
    server.engine.options.set("return_grid", False)
    try:
        page.locator("#txt2img_generate").click()
        wait_done(page, "txt2img")
        page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length === 4")
    finally:
        server.engine.options.set("return_grid", True)


def test_style_editor_saves_with_a_confirmation_edits_and_deletes(page, server):
    styles_csv = server.data / "styles.csv"
    page.locator("#txt2img_prompt textarea").fill("a red circle")
    page.locator("#txt2img_neg_prompt textarea").fill("blurry")
    page.locator("#txt2img_style_create").click()
    editor = page.locator("#txt2img_style_editor").first  # a Gradio 6 Group nests two divs with its id
    editor.wait_for(state="visible")
    assert value(page, "#txt2img_edit_style_prompt textarea") == "a red circle"
    page.locator("#txt2img_style_name input").fill("Circles")
    page.locator("#txt2img_style_name input").press("Enter")
    page.locator("#txt2img_style_save").click()
    page.locator("#html_log_txt2img").filter(has_text="Saved style 'Circles'").wait_for()
    editor.wait_for(state="hidden")
    rows = {r["name"]: r for r in csv.DictReader(styles_csv.open(encoding="utf-8-sig"))}
    assert rows["Circles"]["prompt"] == "a red circle" and rows["Circles"]["negative_prompt"] == "blurry"

    # pick it in the Styles dropdown, open the editor: it shows the style; change it and save
    page.locator("#txt2img_styles input").click()
    page.get_by_role("option", name="Circles").click()
    page.locator("#txt2img_style_create").click()
    editor.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#txt2img_style_name input').value === 'Circles'")
    page.locator("#txt2img_edit_style_prompt textarea").fill("a green circle, {prompt}")
    shot(page, "parity_style_editor.png")
    page.locator("#txt2img_style_save").click()
    editor.wait_for(state="hidden")
    rows = {r["name"]: r for r in csv.DictReader(styles_csv.open(encoding="utf-8-sig"))}
    assert rows["Circles"]["prompt"] == "a green circle, {prompt}"
    assert server.engine.styles.styles["Circles"].prompt == "a green circle, {prompt}"

    page.locator("#txt2img_style_create").click()
    editor.wait_for(state="visible")
    page.locator("#txt2img_style_delete").click()
    page.locator("#html_log_txt2img").filter(has_text="Deleted style 'Circles'").wait_for()
    assert "Circles" not in server.engine.styles.styles
    assert "Circles" not in styles_csv.read_text(encoding="utf-8-sig")


def test_interrupt_and_skip_take_generates_place_and_the_preview_fills_the_gallery(page, server):
    page.locator("#txt2img_prompt textarea").fill("a long run")
    for elem, v in (("txt2img_steps", 150), ("txt2img_width", 64), ("txt2img_height", 64),
                    ("txt2img_batch_count", 40), ("txt2img_seed", 7)):
        set_number(page, elem, v)
    generate = page.locator("#txt2img_generate").bounding_box()
    settings_top = page.locator("#txt2img_settings").bounding_box()["y"]
    page.locator("#txt2img_generate").click()
    page.locator("#txt2img_interrupt").wait_for(state="visible")
    interrupt = page.locator("#txt2img_interrupt").bounding_box()
    skip = page.locator("#txt2img_skip").bounding_box()
    assert not page.locator("#txt2img_generate").is_visible()
    assert abs(interrupt["y"] - generate["y"]) < 4 and abs(skip["y"] - generate["y"]) < 4  # side by side
    assert abs(interrupt["height"] - generate["height"]) < 4
    assert interrupt["x"] >= generate["x"] - 2 and skip["x"] + skip["width"] <= generate["x"] + generate["width"] + 2
    assert abs(page.locator("#txt2img_settings").bounding_box()["y"] - settings_top) < 2  # nothing pushed down
    preview = page.locator("#txt2img_results .sd-live-preview img")
    preview.wait_for(timeout=60_000)
    gallery = page.locator("#txt2img_gallery").bounding_box()
    box = preview.bounding_box()
    assert box["width"] > 0.9 * gallery["width"] and box["height"] > 0.7 * gallery["height"]
    assert abs(box["x"] - gallery["x"]) < 4
    shot(page, "parity_interrupt_in_generates_place.png")
    page.locator("#txt2img_skip").click()  # skips the current image, the run goes on
    page.locator("#txt2img_interrupt").click()
    page.locator("#html_log_txt2img").filter(has_text="Interrupted").wait_for(timeout=30_000)
    page.locator("#txt2img_generate").wait_for(state="visible")
    assert not page.locator("#txt2img_interrupt").is_visible()


PASTED = ("a cat\nNegative prompt: dog\nSteps: 3, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 42, Size: 64x64, "
          "Clip skip: 2, Denoising strength: 0.5, Hires upscale: 1.5, Hires upscaler: 4x-NoSuchUpscaler")


def test_paste_selects_karras_names_an_unknown_upscaler_and_shows_overrides_as_chips(page, server):
    page.locator("#txt2img_prompt textarea").fill(PASTED)
    page.locator("#txt2img_paste").click()
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === 'a cat'")
    assert value(page, "#txt2img_sampling input") == "DPM++ 2M"
    assert value(page, "#txt2img_scheduler input") == "Karras"
    log = page.locator("#html_log_txt2img")
    log.filter(has_text="4x-NoSuchUpscaler").wait_for()
    assert "Hires upscaler" in log.inner_text()
    chips = page.locator("#txt2img_override_settings")
    chips.filter(has_text="Clip skip: 2").wait_for()
    shot(page, "parity_paste_chips.png")

    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img")
    info = page.locator("#html_info_txt2img").inner_text()
    assert "Schedule type: Karras" in info and "Clip skip: 2" in info
    with_override = gallery_images(page, "txt2img")[0]
    assert with_override.size == (96, 96)  # hires 1.5x ran with the Latent upscaler the field kept

    chips.locator("[aria-label*='Clip skip'], .token-remove, button").first.click()
    page.wait_for_function("() => !document.querySelector('#txt2img_override_settings')?.textContent"
                           ".includes('Clip skip: 2')")
    page.locator("#txt2img_generate").click()
    page.locator("#html_log_txt2img").filter(has_text="Time taken").wait_for(timeout=60_000)
    page.wait_for_function("() => !document.querySelector('#html_info_txt2img').textContent.includes('Clip skip')")
    without = gallery_images(page, "txt2img")[0]
    assert with_override.tobytes() != without.tobytes()  # clip skip 2 gave other pixels than the default 1


def test_inpaint_options_show_and_the_mask_repaints_only_its_part(page, server, tmp_path):
    src = Image.new("RGB", (64, 64), (30, 60, 200))
    src.paste((220, 40, 40), (16, 16, 48, 48))
    path = tmp_path / "square.png"
    src.save(path)
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    controls = page.locator("#img2img_inpaint_controls").first
    assert not controls.is_visible()
    page.locator("#img2img_inpaint_tab-button, [role=tab]:has-text('Inpaint')").first.click()
    controls.wait_for(state="visible", timeout=10_000)
    upload_image(page, "#img2maskimg", path)
    draw_stroke(page, "#img2maskimg", [(0.5, 0.45), (0.5, 0.55)])  # the brush is 24 px wide: a blob in the middle
    set_number(page, "img2img_mask_blur", 0)
    page.locator("#img2img_inpainting_fill label", has_text="latent noise").click()
    for elem, v in (("img2img_steps", 3), ("img2img_width", 64), ("img2img_height", 64), ("img2img_seed", 3)):
        set_number(page, elem, v)
    page.locator("#img2img_prompt textarea").fill("a hole")
    shot(page, "parity_inpaint_controls.png")
    page.locator("#img2img_generate").click()
    wait_done(page, "img2img")
    info = page.locator("#html_info_img2img").inner_text()
    assert "Masked content: latent noise" in info  # (a blur of 0 is not written, as in A1111)
    out = np.asarray(gallery_images(page, "img2img")[0].convert("RGB")).astype(int)
    want = np.asarray(src).astype(int)
    assert out.shape == (64, 64, 3)
    corner = np.abs(out[:6, :6] - want[:6, :6]).max()
    centre = np.abs(out[28:36, 28:36] - want[28:36, 28:36]).mean()
    assert corner <= 8, corner  # outside the mask: the original, pasted back
    assert centre > 20, centre  # under the mask: repainted


def _choose(page, elem_id: str, *options: str) -> None:
    box = page.locator(f"#{elem_id} input").first
    for option in options:
        box.click()
        page.get_by_role("option", name=option, exact=True).locator("visible=true").first.click()
    box.press("Escape")  # a multiselect's list stays open, and another dropdown's options would be ambiguous


def test_xyz_swap_buttons_move_type_and_values_between_axes(page, server):
    page.locator("#txt2img_prompt textarea").fill("swap")
    for elem, v in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 5)):
        set_number(page, elem, v)
    _choose(page, "tab_txt2img #script_list", "X/Y/Z plot")
    xid = "script_txt2img_xyz_plot_"
    page.locator(f"#{xid}x_type").wait_for(state="visible")
    _choose(page, f"{xid}x_type", "Steps")
    page.locator(f"#{xid}x_values input, #{xid}x_values textarea").first.fill("1,2")
    _choose(page, f"{xid}y_type", "Sampler")
    page.locator(f"#{xid}y_values_dropdown").wait_for(state="visible")
    _choose(page, f"{xid}y_values_dropdown", "Euler", "DDIM")
    page.locator(f"#{xid}swap_xy").click()
    page.wait_for_function(f"() => document.querySelector('#{xid}x_type input').value === 'Sampler'")
    page.locator(f"#{xid}x_values_dropdown").filter(has_text="DDIM").wait_for()
    assert value(page, f"#{xid}y_type input") == "Steps"
    assert value(page, f"#{xid}y_values input, #{xid}y_values textarea") == "1,2"
    page.locator(f"#{xid}swap_yz").click()
    page.wait_for_function(f"() => document.querySelector('#{xid}z_type input').value === 'Steps'")
    assert value(page, f"#{xid}z_values input, #{xid}z_values textarea") == "1,2"
    assert value(page, f"#{xid}y_type input") == "Nothing"
    page.locator(f"#{xid}swap_xz").click()  # and back: X Steps, Z Sampler
    page.wait_for_function(f"() => document.querySelector('#{xid}x_type input').value === 'Steps'")
    page.locator(f"#{xid}z_values_dropdown").filter(has_text="DDIM").wait_for()
    page.locator(f"#{xid}swap_xz").click()  # X Sampler (Euler, DDIM), Z Steps (1, 2)
    page.wait_for_function(f"() => document.querySelector('#{xid}x_type input').value === 'Sampler'")
    page.locator(f"#{xid}x_values_dropdown").filter(has_text="DDIM").wait_for()
    shot(page, "parity_xyz_swapped.png", full_page=True)
    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img", timeout=120_000)
    info = page.locator("#html_info_txt2img").inner_text()
    grid = gallery_images(page, "txt2img")[0]
    # Z (steps) grids side by side, each one row of X (samplers): one row of four 64 px cells under the legend
    assert grid.width >= 4 * 64 and grid.height < 2 * 64 + 64, (grid.size, info)
    _choose(page, "tab_txt2img #script_list", "None")


def test_save_and_zip_the_selected_image(page, server):
    import zipfile

    page.locator("#txt2img_prompt textarea").fill("keep me")
    for elem, v in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 21),
                    ("txt2img_batch_count", 1), ("txt2img_batch_size", 2)):
        set_number(page, elem, v)
    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img")
    page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length === 3")
    shown = gallery_images(page, "txt2img")  # grid, seed 21, seed 22
    page.locator("#txt2img_gallery .thumbnail-item").nth(2).click()  # the second picture of the batch
    page.locator("#html_info_txt2img").filter(has_text="Seed: 22").wait_for()
    page.locator("#save_txt2img").click()
    page.locator("#html_log_txt2img").filter(has_text="Saved").wait_for()
    folder = server.data / "log" / "images"
    saved = sorted(folder.glob("*.png"))
    assert len(saved) == 1 and "22" in saved[0].name
    with Image.open(saved[0]) as im:
        assert im.convert("RGB").tobytes() == shown[2].convert("RGB").tobytes()
        assert "Seed: 22" in im.info["parameters"] and im.info["parameters"].startswith("keep me")
    rows = list(csv.DictReader((folder / "log.csv").open(encoding="utf-8")))
    assert rows[-1]["seed"] == "22" and rows[-1]["filename"] == saved[0].name and rows[-1]["prompt"] == "keep me"
    download = page.locator("#download_files_txt2img").first
    download.filter(has_text=saved[0].stem).wait_for()
    shot(page, "parity_saved.png")

    page.locator("#save_zip_txt2img").click()
    page.locator("#html_log_txt2img").filter(has_text="_images.zip").wait_for()
    archive = next(folder.glob("*_images.zip"))
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert len(names) == 1
        assert Image.open(io.BytesIO(z.read(names[0]))).convert("RGB").tobytes() == shown[2].convert("RGB").tobytes()
    download.filter(has_text=archive.stem).wait_for()

    server.engine.options.set("save_selected_only", False)
    try:
        page.locator("#save_txt2img").click()
        page.wait_for_function("() => (document.querySelector('#html_log_txt2img').textContent.match(/png/g) || [])"
                               ".length === 3")
        assert len(list(folder.glob("*.png"))) == 1 + 1 + 3  # the single, the zipped one, then all three
    finally:
        server.engine.options.set("save_selected_only", True)


def test_replace_preview_puts_the_selected_picture_on_the_card(page, server):
    page.locator("#txt2img_prompt textarea").fill("a preview")
    for elem, v in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 31),
                    ("txt2img_batch_count", 1), ("txt2img_batch_size", 1)):
        set_number(page, elem, v)
    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img")
    shown = gallery_images(page, "txt2img")[0]
    page.get_by_role("tab", name="Lora", exact=True).first.click()
    root = page.locator("#txt2img_lora .sd-en")
    card = root.locator(".sd-en-card").first
    card.wait_for(timeout=10_000)
    assert not card.locator("img").count()  # no preview yet
    card.hover()
    card.locator(".sd-en-edit").click()
    dialog = page.locator("dialog.sd-en-dialog")
    dialog.locator(".sd-en-replace-preview").click()
    dialog.wait_for(state="detached")
    preview = server.data / "models" / "Lora" / "ink.preview.png"
    with Image.open(preview) as im:
        assert im.convert("RGB").tobytes() == shown.convert("RGB").tobytes()
        assert im.info["parameters"].startswith("a preview")
    img = root.locator(".sd-en-card").first.locator("img")
    img.wait_for()
    served = Image.open(io.BytesIO(page.request.get(img.evaluate("e => e.src")).body()))
    assert served.convert("RGB").tobytes() == shown.convert("RGB").tobytes()
    shot(page, "parity_replace_preview.png")


def test_checkpoint_merger_tab_merges_and_the_result_generates(page, server):
    import json as json_

    from modules.models.safe_load import read_safetensors_metadata

    page.get_by_role("tab", name="Checkpoint Merger", exact=True).click()
    _choose(page, "modelmerger_primary_model_name", *[o for o in _titles(server) if o.startswith("demo.")])
    _choose(page, "modelmerger_secondary_model_name", *[o for o in _titles(server) if o.startswith("demo-other")])
    page.locator("#modelmerger_custom_name textarea, #modelmerger_custom_name input").first.fill("mixed")
    set_number(page, "modelmerger_interp_amount", 0.5)
    page.locator("#modelmerger_save_as_half input").check()
    shot(page, "parity_checkpoint_merger.png")
    page.locator("#modelmerger_merge").click()
    page.locator("#modelmerger_result").filter(has_text="Checkpoint saved to").wait_for(timeout=120_000)
    path = server.data / "models" / "Stable-diffusion" / "mixed.safetensors"
    assert str(path) in page.locator("#modelmerger_result").inner_text()
    recipe = json_.loads(read_safetensors_metadata(path)["sd_merge_recipe"])
    assert (recipe["interp_method"], recipe["multiplier"], recipe["save_as_half"]) == ("Weighted sum", 0.5, True)

    # the new checkpoint is in the top bar's list; load it and generate
    page.locator("#setting_sd_model_checkpoint input[role=combobox]").click()
    page.locator("[role=listbox] [role=option]", has_text="mixed.safetensors").first.click()
    page.locator("#quicksettings_status").filter(has_text="Loaded mixed").wait_for(timeout=60_000)
    try:
        page.get_by_role("tab", name="txt2img", exact=True).first.click()
        page.locator("#txt2img_prompt textarea").fill("merged")
        for elem, v in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 3),
                        ("txt2img_batch_count", 1), ("txt2img_batch_size", 1)):
            set_number(page, elem, v)
        page.locator("#txt2img_generate").click()
        wait_done(page, "txt2img")
        assert "Model: mixed" in page.locator("#html_info_txt2img").inner_text()
        assert gallery_images(page, "txt2img")[0].size == (64, 64)
    finally:
        server.engine.options.set("sd_model_checkpoint", "demo.safetensors")
        server.engine.ensure_model()


def _titles(server) -> list[str]:
    return [i.title for i in server.engine.available_checkpoints()]


def _img2img_subtab(page, name: str) -> None:
    page.get_by_role("tab", name="img2img", exact=True).first.click()
    page.locator("#mode_img2img").get_by_role("tab", name=name, exact=True).click()


def _upload_blue(page, selector: str, tmp_path) -> Image.Image:
    src = Image.new("RGB", (64, 64), (20, 40, 160))
    path = tmp_path / "blue.png"
    src.save(path)
    upload_image(page, selector, path)
    return src


def _img2img_settings(page, denoising: float) -> None:
    for elem, v in (("img2img_steps", 4), ("img2img_width", 64), ("img2img_height", 64), ("img2img_seed", 9),
                    ("img2img_batch_count", 1), ("img2img_batch_size", 1), ("img2img_denoising_strength", denoising)):
        set_number(page, elem, v)


def test_sketch_draws_into_the_init_image(page, server, tmp_path):
    _img2img_subtab(page, "Sketch")
    _upload_blue(page, "#img2img_sketch", tmp_path)
    draw_stroke(page, "#img2img_sketch", [(0.35, 0.5), (0.65, 0.5)])  # a white stripe (a stroke must start on the picture)
    assert not page.locator("#img2img_inpaint_controls").first.is_visible()  # no mask in Sketch
    _img2img_settings(page, 0.15)
    page.locator("#img2img_prompt textarea").fill("a stripe")
    shot(page, "parity_sketch.png")
    page.locator("#img2img_generate").click()
    wait_done(page, "img2img")
    out = np.asarray(gallery_images(page, "img2img")[0].convert("L")).astype(float)
    assert out[28:36, 20:44].mean() > out[:12, 20:44].mean() + 40  # the white stroke is in the picture


def test_inpaint_sketch_repaints_only_the_drawing(page, server, tmp_path):
    _img2img_subtab(page, "Inpaint sketch")
    page.locator("#img2img_inpaint_controls").first.wait_for(state="visible")
    src = _upload_blue(page, "#inpaint_sketch", tmp_path)
    draw_stroke(page, "#inpaint_sketch", [(0.45, 0.5), (0.55, 0.5)])
    set_number(page, "img2img_mask_blur", 0)
    _img2img_settings(page, 0.3)
    page.locator("#img2img_prompt textarea").fill("a white blob")
    page.locator("#img2img_generate").click()
    wait_done(page, "img2img")
    assert "Mask blur" not in page.locator("#html_log_img2img").inner_text()
    out = np.asarray(gallery_images(page, "img2img")[0].convert("RGB")).astype(int)
    assert np.abs(out[:8, :8] - np.asarray(src)[:8, :8]).max() <= 8  # outside the drawing: the picture
    assert out[29:35, 29:35].mean() > out[:8, :8].mean() + 30  # the drawing's colour guided the repaint


def test_batch_runs_a_folder_with_png_info_into_the_output_folder(page, server, tmp_path):
    from PIL import PngImagePlugin

    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(inputs / "a.png")
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a green field\nSteps: 9, Sampler: Euler, CFG scale: 5, Seed: 77, Size: 64x64")
    Image.new("RGB", (64, 64), (30, 200, 30)).save(inputs / "b.png", pnginfo=info)
    _img2img_subtab(page, "Batch")
    page.locator("#img2img_batch_input_dir textarea, #img2img_batch_input_dir input").first.fill(str(inputs))
    page.locator("#img2img_batch_output_dir textarea, #img2img_batch_output_dir input").first.fill(str(outputs))
    page.get_by_text("PNG info", exact=True).click()
    page.locator("#img2img_batch_use_png_info input").check()
    page.locator("#img2img_batch_png_info_props").get_by_label("Seed").check()
    _img2img_settings(page, 0.2)
    page.locator("#img2img_prompt textarea").fill("batch")
    shot(page, "parity_batch.png")
    page.locator("#img2img_generate").click()
    wait_done(page, "img2img")
    assert sorted(p.name for p in outputs.iterdir()) == ["a.png", "b.png"]
    with Image.open(outputs / "b.png") as b, Image.open(outputs / "a.png") as a:
        assert b.info["parameters"].startswith("batch a green field\n") and "Seed: 77" in b.info["parameters"]
        assert "Steps: 4" in b.info["parameters"]  # Steps was not asked for
        assert a.info["parameters"].startswith("batch\n") and "Seed: 9" in a.info["parameters"]
        reds = np.asarray(a.convert("RGB")).astype(int).mean(axis=(0, 1))
        greens = np.asarray(b.convert("RGB")).astype(int).mean(axis=(0, 1))
        assert reds[0] > reds[1] and greens[1] > greens[0]  # each from its own picture
    page.wait_for_function("() => document.querySelectorAll('#img2img_gallery img').length >= 2")


def test_send_to_inpaint_fills_the_editor_and_shows_the_inpaint_options(page, server):
    page.get_by_role("tab", name="txt2img", exact=True).first.click()
    page.locator("#txt2img_prompt textarea").fill("a red circle on a blue background")
    for elem, v in (("txt2img_steps", 6), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 4),
                    ("txt2img_batch_count", 1), ("txt2img_batch_size", 1)):
        set_number(page, elem, v)
    page.locator("#txt2img_generate").click()
    wait_done(page, "txt2img")
    sent = np.asarray(gallery_images(page, "txt2img")[0].convert("RGB")).astype(int)
    page.locator("#txt2img_send_to_inpaint").click()
    page.locator("#img2img_inpaint_controls").first.wait_for(state="visible", timeout=20_000)
    page.wait_for_function("() => document.querySelector('#img2img_prompt textarea').value.startsWith('a red')")
    wait_image_shown(page, "#img2maskimg")
    draw_stroke(page, "#img2maskimg", [(0.5, 0.45), (0.5, 0.55)])
    set_number(page, "img2img_mask_blur", 0)
    page.locator("#img2img_inpainting_fill label", has_text="latent noise").click()
    page.locator("#img2img_generate").click()
    wait_done(page, "img2img")
    out = np.asarray(gallery_images(page, "img2img")[0].convert("RGB")).astype(int)
    assert np.abs(out[:6, :6] - sent[:6, :6]).max() <= 8  # the sent picture is what was inpainted
    shot(page, "parity_send_to_inpaint.png")
