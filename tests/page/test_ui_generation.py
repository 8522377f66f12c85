"""The txt2img/img2img form's pure parts: values -> GenerationRequest, masks, the background run."""
from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from modules.page import generation as ug
from modules.page import run as ui_run
from modules.server.api.tasks import TaskTracker
from modules.core.request import RequestError
from modules.scripting.host import ScriptHost


def _txt2img_values(**over):
    values = dict(prompt="a cat", negative_prompt="blurry", styles=None, sampler_name="Euler a", scheduler="Karras",
                  steps=12.0, width=320.0, height=256.0, n_iter=2.0, batch_size=1.0, cfg_scale=6, seed=123.0,
                  subseed=7.0, subseed_strength=0.5, seed_resize_from_w=64, seed_resize_from_h=64,
                  enable_hr=True, hr_upscaler="Latent", hr_second_pass_steps=5, denoising_strength=0.55,
                  hr_scale=1.5, hr_resize_x=0, hr_resize_y=0, hr_sampler_name="Use same sampler",
                  hr_scheduler="Use same scheduler", hr_prompt="", hr_negative_prompt="", seed_extras=True)
    values.update(over)
    return values


def test_txt2img_request_takes_every_field_with_its_type():
    req = ug.build_request("txt2img", _txt2img_values())
    assert (req.prompt, req.negative_prompt, req.styles) == ("a cat", "blurry", [])
    assert (req.sampler_name, req.scheduler, req.steps) == ("Euler a", "Karras", 12)
    assert (req.width, req.height, req.n_iter, req.batch_size) == (320, 256, 2, 1)
    assert isinstance(req.steps, int) and isinstance(req.cfg_scale, float) and req.cfg_scale == 6.0
    assert (req.seed, req.subseed, req.subseed_strength) == (123, 7, 0.5)
    assert (req.seed_resize_from_w, req.seed_resize_from_h) == (64, 64)
    assert req.enable_hr and req.hr_scale == 1.5 and req.hr_second_pass_steps == 5 and req.denoising_strength == 0.55
    assert req.hr_sampler_name is None and req.hr_scheduler is None  # "Use same ..." means none of its own
    assert not req.is_img2img


def test_hidden_seed_extras_are_ignored_as_in_a1111():
    req = ug.build_request("txt2img", _txt2img_values(seed_extras=False))
    assert req.subseed_strength == 0.0
    assert (req.seed_resize_from_w, req.seed_resize_from_h) == (-1, -1)
    assert ug.build_request("txt2img", _txt2img_values(seed=None)).seed == -1


def _img2img_values(**over):
    values = dict(prompt="p", negative_prompt="", styles=["s"], sampler_name="Euler", scheduler="Automatic", steps=4,
                  width=128, height=96, n_iter=1, batch_size=1, cfg_scale=7, seed=1, subseed=-1, subseed_strength=0,
                  seed_resize_from_w=0, seed_resize_from_h=0, denoising_strength=0.4, resize_mode="Crop and resize",
                  mask_blur=6, inpainting_fill="latent noise", inpaint_full_res="Only masked",
                  inpaint_full_res_padding=48, inpainting_mask_invert="Inpaint not masked", seed_extras=False,
                  mode="img2img", init_image=Image.new("RGBA", (200, 100), (10, 20, 30, 255)), inpaint_editor=None,
                  inpaint_upload_image=None, inpaint_upload_mask=None, resize_by_selected=False, scale_by=1.0)
    values.update(over)
    return values


def test_img2img_request_converts_radios_to_a1111_indices():
    req = ug.build_request("img2img", _img2img_values())
    assert req.is_img2img and req.init_images[0].mode == "RGB" and req.init_images[0].size == (200, 100)
    assert req.mask is None and req.resize_mode == 1 and req.denoising_strength == 0.4
    assert req.styles == ["s"]


def test_inpaint_mask_is_the_painted_pixels_of_the_editor_layers():
    background = Image.new("RGBA", (64, 48), (200, 0, 0, 255))
    layer = Image.new("RGBA", (64, 48), (0, 0, 0, 0))
    ImageDraw.Draw(layer).rectangle((10, 5, 29, 14), fill=(255, 255, 255, 255))
    editor = {"background": background, "layers": [layer], "composite": background}
    req = ug.build_request("img2img", _img2img_values(mode="inpaint", inpaint_editor=editor))
    mask = req.mask
    assert mask.mode == "L" and mask.size == (64, 48)
    assert mask.getbbox() == (10, 5, 30, 15)
    assert sorted(set(mask.getdata())) == [0, 255]
    assert (req.inpainting_fill, req.inpaint_full_res, req.inpaint_full_res_padding) == (2, True, 48)
    assert (req.inpainting_mask_invert, req.mask_blur_x, req.mask_blur_y) == (1, 6, 6)
    assert req.init_images[0].getpixel((0, 0)) == (200, 0, 0)


def test_inpaint_without_strokes_or_image_says_what_is_missing():
    empty = {"background": Image.new("RGBA", (32, 32)), "layers": [Image.new("RGBA", (32, 32), (0, 0, 0, 0))]}
    with pytest.raises(RequestError) as err:
        ug.build_request("img2img", _img2img_values(mode="inpaint", inpaint_editor=empty))
    assert err.value.field == "mask" and "mask is empty" in err.value.message
    with pytest.raises(RequestError) as err:
        ug.build_request("img2img", _img2img_values(mode="img2img", init_image=None))
    assert err.value.field == "init_images"


def test_uploaded_mask_uses_alpha_when_transparent():
    rgba = Image.new("RGBA", (20, 10), (255, 255, 255, 0))
    rgba.paste((255, 255, 255, 255), (0, 0, 5, 10))
    mask = ug.upload_mask(rgba)
    assert mask.getpixel((2, 5)) == 255 and mask.getpixel((15, 5)) == 0
    grey = Image.new("RGB", (4, 4), (128, 128, 128))
    assert ug.upload_mask(grey).getpixel((0, 0)) == 128
    req = ug.build_request("img2img", _img2img_values(mode="inpaint upload", inpaint_upload_image=grey,
                                                     inpaint_upload_mask=rgba))
    assert req.mask.getbbox() == (0, 0, 5, 10)


def test_resize_by_scales_the_init_image_to_multiples_of_8():
    req = ug.build_request("img2img", _img2img_values(resize_by_selected=True, scale_by=1.5))
    assert (req.width, req.height) == (304, 152)  # 200*1.5=300 -> 304, 100*1.5=150 -> 152


def test_size_follows_the_model_only_where_the_user_left_the_native_size():
    # demo model (64) -> SD1 checkpoint (512): an untouched tab follows, a chosen size stays
    assert ug.size_after_model_change((64, 64), (64, 64), (512, 512)) == (512, 512)
    assert ug.size_after_model_change((64, 64), (64.0, 64.0), (512, 512)) == (512, 512)  # slider floats
    assert ug.size_after_model_change((64, 64), (96, 64), (512, 512)) is None
    assert ug.size_after_model_change((512, 512), (512, 512), (512, 512)) is None  # same native size
    assert ug.size_after_model_change((512, 512), (512, 512), (1024, 1024)) == (1024, 1024)


class _SizedEngine:
    def __init__(self, size):
        self.size = size

    def native_size(self):
        if self.size is None:
            raise RuntimeError("no model")
        return self.size


def test_native_size_asks_the_engine_and_falls_back_to_512():
    assert ug.native_size(_SizedEngine((64, 64))) == (64, 64)
    assert ug.native_size(_SizedEngine(None)) == (512, 512)
    assert ug.native_size(object()) == (512, 512)


def test_log_html_escapes_and_orders_messages():
    out = ug.log_html(["<lora> missing"], error="steps: must be <= 500", seconds=1.25, interrupted=True)
    assert "&lt;lora&gt; missing" in out and "steps: must be &lt;= 500" in out and "<lora>" not in out
    assert out.index("Error") < out.index("missing") < out.index("Interrupted") < out.index("1.2 s")
    assert ug.infotext_html("a<b\nSteps: 1") == '<div class="sd-infotext">a&lt;b\nSteps: 1</div>'


def test_selected_image_reads_gallery_values(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    gallery = [(str(path), None), (Image.new("RGB", (4, 4), (9, 9, 9)), "caption")]
    assert ug.selected_image(gallery, 0).getpixel((0, 0)) == (1, 2, 3)
    assert ug.selected_image(gallery, 5).getpixel((0, 0)) == (9, 9, 9)  # clamped to the last
    assert ug.selected_image([], 0) is None


# --- the background run, on a tiny engine ---------------------------------------------------------

def test_run_generation_reports_each_finished_image_then_the_result(tiny_engine):
    req = ug.build_request("txt2img", _txt2img_values(enable_hr=False, n_iter=3, steps=2, width=64, height=64,
                                                      seed_extras=False))
    req.do_not_save_samples = req.do_not_save_grid = True
    req.id_task = "task(test-run)"
    tasks = TaskTracker()
    updates = list(ui_run.run_generation(ScriptHost.for_engine(tiny_engine), req, tasks=tasks, poll_seconds=0.001))
    final = updates[-1]
    assert final.done and final.error is None and len(final.images) == 3
    partial = [u for u in updates if not u.done]
    assert all(0 < len(u.images) <= 3 for u in partial)
    assert [len(u.images) for u in partial] == sorted(len(u.images) for u in partial)
    assert final.infotexts[0].startswith("a cat\nNegative prompt: blurry\nSteps: 2")
    for update in partial:  # partial images are the same pixels as the final ones
        for got, want in zip(update.images, final.images):
            assert got.tobytes() == want.tobytes()
    assert tasks.is_finished("task(test-run)")


def test_run_generation_turns_errors_into_one_line(tiny_engine):
    req = ug.build_request("txt2img", _txt2img_values(sampler_name="No such sampler", enable_hr=False, steps=1,
                                                      width=64, height=64))
    req.id_task = "task(bad)"
    updates = list(ui_run.run_generation(ScriptHost.for_engine(tiny_engine), req, poll_seconds=0.001))
    assert len(updates) == 1 and updates[0].done and updates[0].images == []
    assert updates[0].error.startswith("sampler_name: ") and "No such sampler" in updates[0].error
    with pytest.raises(ValueError):
        next(ui_run.run_generation(ScriptHost.for_engine(tiny_engine), req.__class__()))  # no id_task


def test_token_count_uses_the_loaded_text_encoder(tiny_engine):
    from modules.page import routes as ui_routes

    short = ui_routes.count_tokens(tiny_engine, "a red circle", 20)
    assert short["used"] == 3 and short["text"] == "3/75"
    long = ui_routes.count_tokens(tiny_engine, ", ".join(["word"] * 60), 20)
    assert long["used"] == 119 and long["text"] == "119/150"
    tagged = ui_routes.count_tokens(tiny_engine, "a red circle <lora:x:1> [dog:cat dog cat:5]", 20)
    assert tagged["used"] == 6  # tags are not tokens; the longest scheduled text counts
