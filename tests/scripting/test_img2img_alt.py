"""A1111's built-in "img2img alternative test" through the API's ``script_name``, on the shipped demo model: with the
original prompt and randomness 0 the noise it finds by Euler inversion gives the init picture back; another prompt
changes the picture; the Euler inversion itself is checked on a denoiser whose answer is known."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from modules.core.sampling.inversion import blend_noise, euler_inversion
from modules.settings import cmd_args
from tools.demo_model import shapes

SCENE = shapes.Scene("circle", "red", "large", "center", "blue")
STEPS = 12


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("img2img-alt")  # no checkpoint of its own: the demo model opens
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    return TestClient(webui.create_app(engine, args), raise_server_exceptions=True)


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _run(client, prompt: str, override_prompt: bool, randomness: float = 0.0) -> np.ndarray:
    args = [None, True, override_prompt, shapes.caption(SCENE), "", True, STEPS, True, 1.0, randomness, True]
    r = client.post("/sdapi/v1/img2img", json={
        "init_images": [_b64(shapes.render(SCENE))], "prompt": prompt, "width": 64, "height": 64, "seed": 3,
        "cfg_scale": 1.0, "script_name": "img2img alternative test", "script_args": args,
        "save_images": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "Steps: 12, Sampler: Euler" in body["info"] and "Denoising strength: 1.0" in body["info"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).convert("RGB"), dtype=np.float32)


def test_the_original_prompt_gives_the_picture_back_and_another_prompt_changes_it(client):
    init = np.asarray(shapes.render(SCENE), dtype=np.float32)
    back = _run(client, "ignored: the original prompt overrides it", override_prompt=True)
    star = _run(client, "a large green star in the center, blue background", override_prompt=False)
    assert np.abs(back - init).mean() < 6
    assert np.abs(star - init).mean() > 3 * np.abs(back - init).mean() + 6
    assert np.abs(star[..., 1] - init[..., 1]).mean() > 8  # green appears where the red circle was


def test_randomness_one_uses_the_seed_noise_instead(client):
    found = _run(client, "x", override_prompt=True)
    seeded = _run(client, "x", override_prompt=True, randomness=1.0)
    assert np.abs(found - seeded).mean() > 1


def test_it_is_listed_for_img2img(client):
    assert "img2img alternative test" in client.get("/sdapi/v1/scripts").json()["img2img"]


def test_euler_inversion_walks_the_schedule_backwards():
    """With D(x, σ) = 0 (every prediction is 'nothing') a step of the sigma-adjusted variant scales x by σᵢ/σᵢ₋₁
    (its first step, from σ = 0, is zero), so it ends at x·σ_max/σ₁ before dividing by σ_max; the plain variant
    scales by 2 − σᵢ₋₁/σᵢ and normalises to unit deviation."""
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0])
    zero = lambda x, s: torch.zeros_like(x)  # noqa: E731
    plain = euler_inversion(zero, x, sigmas)
    assert torch.allclose(plain, x / x.std(), atol=1e-5)
    adjusted = euler_inversion(zero, x, sigmas, sigma_adjustment=True)
    assert torch.allclose(adjusted, x * (10 / 1.0) / 10.0, atol=1e-5)
    assert torch.allclose(blend_noise(x, -x, 0.5), torch.zeros_like(x)) and torch.equal(blend_noise(x, -x, 0.0), x)
