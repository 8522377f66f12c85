"""End to end through the Engine on a tiny single-file checkpoint: txt2img, batches and seeds,
files and infotext, img2img, inpainting, hires fix, interrupt, model switching."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.settings import cmd_args
from modules.core import infotext
from modules.engine import rng
from modules.core.request import GenerationRequest, RequestError
from tests import tiny_models


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("data")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=0), ckpt_dir / "tiny-a.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(data)], environ={})
    eng = webui.build_engine(args)
    eng.options.set("show_progress_every_n_steps", 2)
    return eng


def _req(**kw):
    base = dict(prompt="a red circle", negative_prompt="blurry", steps=4, width=64, height=64, cfg_scale=5.0,
                sampler_name="Euler a", seed=1234)
    base.update(kw)
    return GenerationRequest(**base)


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_txt2img_writes_png_with_infotext(engine):
    out = engine.generate(_req())
    assert len(out.images) == 1 and out.images[0].size == (64, 64)
    assert out.seeds == [1234]
    text = out.infotexts[0]
    fields = infotext.parse_generation_parameters(text)
    assert fields["Prompt"] == "a red circle"
    assert fields["Negative prompt"] == "blurry"
    assert fields["Steps"] == "4" and fields["Sampler"] == "Euler a" and fields["Seed"] == "1234"
    assert fields["Size-1"] == "64" and fields["Size-2"] == "64"
    assert fields["Model"] == "tiny-a"
    assert len(fields["Model hash"]) == 10
    assert text.splitlines()[-1].startswith("Steps: 4, Sampler: Euler a, Schedule type: Automatic, CFG scale: 5.0, Seed: 1234, Size: 64x64, Model hash: ")
    saved = [Path(p) for p in out.saved_paths]
    assert len(saved) == 1 and saved[0].name.endswith("-1234.png")
    assert saved[0].parent.parent.name == "txt2img-images"
    with Image.open(saved[0]) as img:
        assert img.info["parameters"] == text
    assert Path(engine.paths.params_txt).read_text(encoding="utf8") == text


def test_same_seed_same_image_and_batch_independent(engine):
    batch = engine.generate(_req(batch_size=3, seed=500, sampler_name="DPM++ 2M"))
    assert batch.seeds == [500, 501, 502]
    alone = engine.generate(_req(seed=502, sampler_name="DPM++ 2M"))
    assert np.abs(_arr(batch.images[2]) - _arr(alone.images[0])).max() <= 1
    again = engine.generate(_req(seed=502, sampler_name="DPM++ 2M"))
    assert np.array_equal(_arr(again.images[0]), _arr(alone.images[0]))
    assert not np.array_equal(_arr(batch.images[0]), _arr(batch.images[1]))


def test_ancestral_noise_is_per_image(engine):
    batch = engine.generate(_req(batch_size=2, seed=77, sampler_name="Euler a"))
    alone = engine.generate(_req(seed=78, sampler_name="Euler a"))
    assert np.abs(_arr(batch.images[1]) - _arr(alone.images[0])).max() <= 1


def test_noise_matches_plain_torch_generator():
    r = rng.ImageRNG(shape=(4, 8, 8), seeds=[3, 4], subseeds=[9, 10], source="CPU")
    noise = r.first()
    assert torch.equal(noise[1], torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(4)))


def test_variation_seed_and_seed_resize_infotext(engine):
    out = engine.generate(_req(subseed=42, subseed_strength=0.3, seed_resize_from_w=128, seed_resize_from_h=64))
    fields = infotext.parse_generation_parameters(out.infotexts[0])
    assert fields["Variation seed"] == "42" and fields["Variation seed strength"] == "0.3"
    assert fields["Seed resize from-1"] == "128" and fields["Seed resize from-2"] == "64"


def test_cpu_rng_infotext(engine):
    engine.options.set("randn_source", "CPU")
    try:
        out = engine.generate(_req())
    finally:
        engine.options.set("randn_source", "GPU")
    assert "RNG: CPU" in out.infotexts[0]


def test_img2img_and_inpaint_keeps_unmasked_pixels(engine):
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    init.paste((20, 20, 220), (0, 0, 32, 64))
    out = engine.generate(_req(init_images=[init], denoising_strength=0.6))
    assert out.images[0].size == (64, 64)
    assert "Denoising strength: 0.6" in out.infotexts[0]
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (40, 40, 64, 64))
    out = engine.generate(_req(init_images=[init], mask=mask, mask_blur_x=4, mask_blur_y=4, inpaint_full_res=False,
                               inpainting_fill=1, denoising_strength=1.0))
    result = _arr(out.images[0])
    assert np.array_equal(result[:32, :32], _arr(init)[:32, :32])
    fields = infotext.parse_generation_parameters(out.infotexts[0])
    assert fields["Mask blur"] == "4" and fields["Inpaint area"] == "Whole picture"


def test_hires_fix_doubles_size(engine):
    out = engine.generate(_req(enable_hr=True, hr_scale=2.0, hr_upscaler="Latent", hr_second_pass_steps=2, denoising_strength=0.5))
    assert out.images[0].size == (128, 128)
    fields = infotext.parse_generation_parameters(out.infotexts[0])
    assert fields["Size-1"] == "64" and fields["Hires upscale"] == "2.0" and fields["Hires upscaler"] == "Latent"
    assert fields["Hires steps"] == "2" and fields["Denoising strength"] == "0.5"
    out = engine.generate(_req(enable_hr=True, hr_resize_x=96, hr_resize_y=96, hr_upscaler="Lanczos", denoising_strength=0.5))
    assert out.images[0].size == (96, 96)


def test_bad_request_names_field(engine):
    with pytest.raises(RequestError) as err:
        engine.generate(_req(width=65))
    assert err.value.field == "width"
    with pytest.raises(RequestError) as err:
        engine.generate(_req(sampler_name="Nonexistent"))
    assert "DPM++ 2M" in str(err.value)


def test_interrupt_returns_finished_images(engine):
    result = {}

    def run():
        result["out"] = engine.generate(_req(steps=60, n_iter=50, width=64, height=64))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 60
    while engine.state.job_no < 1 and time.time() < deadline:
        time.sleep(0.01)
    engine.state.interrupt()
    thread.join(60)
    out = result["out"]
    assert out.interrupted
    assert 1 <= len(out.images) < 50
    assert len(out.infotexts) == len(out.images)


def test_bad_checkpoint_keeps_current_model(engine, tmp_path):
    before = engine.checkpoint_info.filename
    bad = Path(engine.paths.ckpt_dirs[0]) / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    try:
        engine.refresh_checkpoints()
        info = engine.checkpoints.get_closest("broken")
        with pytest.raises(Exception) as err:
            engine.load_checkpoint(info)
        assert "broken.safetensors" in str(err.value)
        assert engine.checkpoint_info.filename == before
        assert len(engine.generate(_req()).images) == 1
    finally:
        bad.unlink()
        engine.refresh_checkpoints()


def test_skip_keeps_the_partly_denoised_image_and_goes_on(engine):
    """A1111: Skip ends the current batch's sampling early and keeps its partly denoised picture (the last
    x0 prediction, decoded); the next batches run in full."""
    result = {}
    original_check = engine.state.check
    calls = {"n": 0}

    def check_and_skip_once():
        calls["n"] += 1
        if calls["n"] == 2:  # inside the first batch's sampling
            engine.state.skip()
        original_check()

    engine.state.check = check_and_skip_once
    try:
        out = engine.generate(_req(n_iter=3, seed=10))
    finally:
        engine.state.check = original_check
    assert not out.interrupted
    assert out.seeds == [10, 11, 12]
    assert len(out.images) == 3 and len(out.infotexts) == 3
    assert "Seed: 10," in out.infotexts[0]
    full = engine.generate(_req(n_iter=1, seed=10))
    assert np.asarray(full.images[0]).tolist() != np.asarray(out.images[0]).tolist()
