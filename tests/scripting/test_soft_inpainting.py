"""Soft inpainting: the math's properties, and the built-in script through the API on the shipped demo model (its
trained VAE keeps pictures, so pixels can be judged)."""
from __future__ import annotations

import base64
import io
import json
import shutil

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from modules.core import infotext
from modules.core import soft_inpainting as soft
from modules.models import builtin_model
from modules.scripting import runtime
from modules.settings import cmd_args

SETTINGS = soft.SoftInpaintingSettings()


# --- the math ---------------------------------------------------------------------------------------------------------

def test_latent_blend_ends_are_the_two_latents_and_lengths_follow_the_power_mean():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 4, 6, 6, generator=g), torch.randn(1, 4, 6, 6, generator=g)
    assert torch.allclose(soft.latent_blend(SETTINGS, a, b, torch.zeros_like(a)), a, atol=1e-5)
    assert torch.allclose(soft.latent_blend(SETTINGS, a, b, torch.ones_like(a)), b, atol=1e-5)
    half = soft.latent_blend(SETTINGS, a, b, torch.full_like(a, 0.5))
    norm = lambda x: torch.linalg.vector_norm(x, dim=1)  # noqa: E731
    expected = ((norm(a) ** 4 + norm(b) ** 4) / 2) ** 0.25  # the boost keeps the longer vector's contrast
    assert torch.allclose(norm(half), expected, rtol=1e-4)
    assert (norm(half) >= norm((a + b) / 2) - 1e-5).all()


def test_step_opacity_fades_the_original_as_sigma_falls():
    nmask = torch.tensor([0.0, 0.25, 0.5, 1.0])
    high, low = soft.step_opacity(SETTINGS, nmask, 10.0), soft.step_opacity(SETTINGS, nmask, 0.1)
    assert high[0] == low[0] == 0 and high[-1] == low[-1] == 1  # unmasked stays original, masked is generated
    assert (low[1:3] > high[1:3]).all()  # partial mask: more of the generated latent at low noise


def test_weighted_histogram_filter_mean_max_and_constant():
    kernel, center = soft.gaussian_kernel(1.5, 2)
    assert kernel[center, center] == 1 and kernel[0, 0] > 0 and kernel.shape == (5, 5)
    flat = np.full((6, 7), 3.0)
    assert np.allclose(soft.weighted_histogram_filter(flat, kernel, center, 0.25, 0.75, 1), 3.0)
    spike = np.zeros((7, 7))
    spike[3, 3] = 10.0
    soft_max = soft.weighted_histogram_filter(spike, kernel, center, 0.9, 1.0, 1)
    assert soft_max[3, 3] == 10.0 and 5 < soft_max[3, 4] < 10  # the top of the stack spreads the spike, by weight
    assert soft_max[0, 0] == 0.0  # beyond the kernel's reach
    mean = soft.weighted_histogram_filter(spike, kernel, center, 0.0, 1.0, 1)
    assert mean[3, 3] == pytest.approx(10.0 / kernel.sum())


def test_difference_masks_keep_the_original_where_nothing_moved():
    original = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    moved = original.clone()
    moved[:, :, 3:5, 3:5] += 3.0
    nmask = torch.ones(1, 4, 8, 8)
    mask = np.asarray(soft.difference_masks(SETTINGS, nmask, original, moved, 64, 64)[0])
    assert mask.shape == (64, 64)
    assert mask[:4, :4].max() <= 2  # unchanged: the original's pixels (a Lanczos ripple at most)
    assert mask[28:36, 28:36].min() > 200  # changed: the generated pixels
    same = np.asarray(soft.difference_masks(SETTINGS, nmask, original, original, 64, 64)[0])
    assert same.max() == 0


# --- the script through the API -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("soft-inpainting")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    shutil.copyfile(builtin_model.DEMO_PATH, ckpt_dir / "demo.safetensors")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    yield TestClient(webui.create_app(engine, args))
    runtime.unbind(engine)  # later tests expect no Engine behind A1111's globals


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


SOURCE = Image.new("RGB", (64, 64), (30, 60, 200))
ImageDraw.Draw(SOURCE).ellipse((20, 20, 44, 44), fill=(220, 40, 40))
MASK = Image.new("L", (64, 64), 0)
ImageDraw.Draw(MASK).rectangle((24, 24, 40, 40), fill=255)
ARGS = [True, 1, 0.5, 4, 0, 0.5, 2]


def _inpaint(client, mask: Image.Image | None = MASK, **extra):
    payload = {"prompt": "a yellow star on a blue background", "steps": 8, "width": 64, "height": 64, "seed": 5,
               "sampler_name": "Euler", "init_images": [_b64(SOURCE)], "denoising_strength": 0.75, "mask_blur": 2,
               "inpainting_fill": 1, "inpaint_full_res": False, **extra}
    if mask is not None:
        payload["mask"] = _b64(mask)
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
    return np.asarray(image.convert("RGB"), dtype=np.int16), json.loads(body["info"])["infotexts"][0]


def test_soft_inpainting_changes_the_picture_keeps_the_rest_and_writes_a1111s_keys(client):
    plain, plain_text = _inpaint(client)
    blended, text = _inpaint(client, alwayson_scripts={"soft inpainting": {"args": ARGS}})
    source = np.asarray(SOURCE, dtype=np.int16)
    assert np.abs(plain - blended).mean() > 2.0
    assert np.abs(blended - source)[:6, :6].max() <= 2  # far from the mask: the original's pixels
    assert np.abs(blended - source)[28:36, 28:36].mean() > 30  # the masked part was repainted
    params = infotext.parse_generation_parameters(text)
    assert params["Soft inpainting enabled"] == "True"
    assert [params[k] for k in soft.INFOTEXT_KEYS] == ["1.0", "0.5", "4.0", "0.0", "0.5", "2.0"]
    assert "Soft inpainting" not in plain_text


def test_soft_inpainting_is_off_unless_enabled_and_needs_a_mask(client):
    plain, _ = _inpaint(client)
    off, text = _inpaint(client, alwayson_scripts={"soft inpainting": {"args": [False, *ARGS[1:]]}})
    assert np.array_equal(plain, off) and "Soft inpainting" not in text
    no_mask, _ = _inpaint(client, mask=None)
    no_mask_soft, text = _inpaint(client, mask=None, alwayson_scripts={"soft inpainting": {"args": ARGS}})
    assert np.array_equal(no_mask, no_mask_soft) and "Soft inpainting" not in text


def test_soft_inpainting_parameters_change_the_result_and_bad_ones_are_refused(client):
    base, _ = _inpaint(client, alwayson_scripts={"soft inpainting": {"args": ARGS}})
    strict, _ = _inpaint(client, alwayson_scripts={"soft inpainting": {"args": [True, 1, 0.5, 4, 0, 0.0, 2]}})
    assert not np.array_equal(base, strict)  # threshold 0: no original pixel comes back inside the moved area
    r = client.post("/sdapi/v1/img2img", json={
        "init_images": [_b64(SOURCE)], "mask": _b64(MASK), "width": 64, "height": 64, "steps": 2,
        "alwayson_scripts": {"soft inpainting": {"args": [True, 1, 0.5, 99, 0, 0.5, 2]}}})
    assert r.status_code == 422 and "Transition contrast boost" in r.text
