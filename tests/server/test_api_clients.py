"""The `webuiapi` client from PyPI (written against AUTOMATIC1111) drives our server over loopback."""
from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

from tests.server.test_api_robustness import LiveServer, build_api_app

webuiapi = pytest.importorskip("webuiapi")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    engine, app = build_api_app(tmp_path_factory, "api-clients")
    server = LiveServer(app)
    yield {"engine": engine, "url": server.url, "port": server.port}
    server.stop()


@pytest.fixture
def api(live):
    return webuiapi.WebUIApi(host="127.0.0.1", port=live["port"], sampler="Euler a", steps=3)


def _gradient(w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 9) % 256, (y * 5) % 256, 128) for y in range(h) for x in range(w)])
    return img


def test_txt2img(api):
    result = api.txt2img(prompt="a lighthouse", negative_prompt="fog", seed=321, width=64, height=64, batch_size=2)
    assert [im.size for im in result.images] == [(64, 64), (64, 64)]
    assert result.info["all_seeds"] == [321, 322]
    assert result.info["sampler_name"] == "Euler a" and result.info["steps"] == 3
    assert result.parameters["prompt"] == "a lighthouse"
    assert "Seed: 322" in result.images[1].info["parameters"]


def test_img2img_and_inpainting(api):
    init = _gradient(64, 64)
    result = api.img2img(images=[init], prompt="a boat", seed=9, width=64, height=64, denoising_strength=0.5)
    assert result.images[0].size == (64, 64) and result.info["all_seeds"] == [9]
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    result = api.img2img(images=[init], mask_image=mask, inpainting_fill=1, prompt="a boat", seed=9,
                         width=64, height=64, denoising_strength=0.75)
    out = result.images[0].convert("RGB")
    assert out.size == (64, 64)
    # Away from the (blurred) mask edge the original picture is pasted back (A1111's overlay): the right side
    # stays as it was, to rounding, while the masked left side is repainted.
    def diff(box: tuple[int, int, int, int]) -> int:
        return max(abs(a - b) for p, q in zip(out.crop(box).getdata(), init.crop(box).getdata()) for a, b in zip(p, q))

    assert diff((48, 0, 64, 64)) <= 2
    assert diff((0, 0, 16, 64)) > 20


def test_models_and_options(api, live):
    engine = live["engine"]
    models = api.get_sd_models()
    assert [m["model_name"] for m in models] == ["tiny-live"]
    assert models[0]["hash"] == engine.checkpoint_info.shorthash
    assert api.util_get_current_model() == models[0]["title"]
    options = api.get_options()
    assert options["CLIP_stop_at_last_layers"] == 1
    assert api.set_options({"CLIP_stop_at_last_layers": 2, "samples_save": False}) is None
    options = api.get_options()
    assert options["CLIP_stop_at_last_layers"] == 2 and options["samples_save"] is False
    api.set_options({"CLIP_stop_at_last_layers": 1})
    api.util_set_model(models[0]["title"])
    assert engine.checkpoint_info.title == models[0]["title"]
    assert "Euler a" in api.util_get_sampler_names()
    assert "Lanczos" in [u["name"] for u in api.get_upscalers()]


def test_png_info_round_trip(api):
    made = api.txt2img(prompt="a red kite", seed=55, width=64, height=64).images[0]
    result = api.png_info(made)
    assert result.info.startswith("a red kite\nSteps: 3, Sampler: Euler a")
    assert result.parameters["Seed"] == "55" and result.parameters["Size-1"] == "64"


def test_extras(api):
    result = api.extra_single_image(image=_gradient(32, 24), upscaler_1=webuiapi.Upscaler.Lanczos, upscaling_resize=2)
    assert result.images[0].size == (64, 48)
    assert "Postprocess upscaler: Lanczos" in result.info
    result = api.extra_batch_images(images=[_gradient(16, 16), _gradient(24, 8)], upscaler_1="Nearest",
                                    upscaling_resize=2)
    assert [im.size for im in result.images] == [(32, 32), (48, 16)]


def test_interrupt_and_progress(api, live):
    state = live["engine"].state
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", api.txt2img(
        prompt="long", seed=1, width=64, height=64, steps=6, n_iter=300)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while state.job_no < 1:
        assert time.monotonic() < deadline, "generation did not start"
        time.sleep(0.01)
    progress = api.get_progress()
    assert 0 < progress["progress"] <= 1 and progress["state"]["job_count"] == 300
    assert api.interrupt() == {}
    thread.join(60)
    result = box["r"]
    assert 1 <= len(result.images) < 300
    assert result.info["all_seeds"] == list(range(1, 1 + len(result.images)))
