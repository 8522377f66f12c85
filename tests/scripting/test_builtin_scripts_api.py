"""A1111's built-in scripts written here (SD upscale, Loopback) through the API's ``script_name``, and a
selectable script that raises: A1111's error shape naming it, never a raw traceback; the next request works."""
from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules.settings import cmd_args
from tests import tiny_models
from tests.extension_app import extension_api

RAISING = '''
from modules import scripts

class Raising(scripts.Script):
    def title(self):
        return "Raising script"

    def run(self, p, *args):
        raise ZeroDivisionError("the extension divided by zero")
'''


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return extension_api(tmp_path_factory.mktemp("builtin-scripts"), "raising-extension", "raising.py", RAISING)[1]


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _image(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def _init() -> Image.Image:
    image = Image.new("RGB", (64, 64), (30, 60, 200))
    image.paste((220, 40, 40), (16, 16, 48, 48))
    return image


BASE = {"prompt": "a red square", "steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler",
        "denoising_strength": 0.3}


def test_sd_upscale_by_name_as_a1111s_own_api_test_calls_it(client):
    payload = {**BASE, "init_images": [_b64(_init())], "script_name": "sd upscale",
               "script_args": ["", 8, "Lanczos", 2.0]}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 200, r.text
    images = r.json()["images"]
    assert len(images) == 1
    out = _image(images[0])
    assert out.size == (128, 128)
    assert "Denoising strength: 0.3" in out.info["parameters"]
    # Redrawn by img2img, not just resized: it differs from the plain Lanczos upscale.
    plain = _init().resize((128, 128), Image.LANCZOS)
    diff = sum(abs(a - b) for a, b in zip(out.convert("RGB").tobytes(), plain.tobytes()))
    assert diff > 0


def test_sd_upscale_refuses_an_unknown_upscaler_naming_the_field(client):
    payload = {**BASE, "init_images": [_b64(_init())], "script_name": "sd upscale",
               "script_args": ["", 8, "No such upscaler", 2.0]}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 422
    assert "script_args" in r.json()["detail"] and "No such upscaler" in r.json()["detail"]


def test_sd_upscale_is_listed_for_img2img_only(client):
    names = client.get("/sdapi/v1/scripts").json()
    assert "sd upscale" in names["img2img"] and "sd upscale" not in names["txt2img"]
    assert "loopback" in names["img2img"]


def test_loopback_feeds_each_result_back(client):
    payload = {**BASE, "init_images": [_b64(_init())], "script_name": "loopback", "script_args": [3, 0.2, "Linear"]}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert len(r.json()["images"]) >= 3
    assert len(info["all_seeds"]) >= 3


def test_a_raising_script_answers_a1111s_error_shape_and_the_next_request_works(client):
    r = client.post("/sdapi/v1/txt2img", json={**BASE, "script_name": "raising script"})
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"error", "detail", "body", "errors"}
    assert body["error"] == "ScriptError"
    assert "Raising script" in body["detail"] and "ZeroDivisionError" in body["detail"]
    assert "raising-extension" in body["errors"]
    ok = client.post("/sdapi/v1/txt2img", json=BASE)
    assert ok.status_code == 200
    ext = client.get("/sdapi/v1/extensions").json()
    assert any(e["name"] == "raising-extension" for e in ext)


def test_custom_code_is_not_offered_without_allow_code(client):
    names = client.get("/sdapi/v1/scripts").json()
    assert "custom code" not in names["txt2img"] and "custom code" not in names["img2img"]
    r = client.post("/sdapi/v1/txt2img", json={**BASE, "script_name": "custom code", "script_args": ["return None"]})
    assert r.status_code == 422


def test_custom_code_runs_with_allow_code(tmp_path):
    import webui

    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "tiny.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(tmp_path), "--nowebui", "--allow-code"], environ={})
    engine = webui.build_engine(args)
    with TestClient(webui.create_app(engine, args)) as client:
        code = "p.steps = 1\np.prompt = 'changed by code'\nreturn process_images(p)"
        r = client.post("/sdapi/v1/txt2img", json={**BASE, "script_name": "custom code", "script_args": [code]})
        assert r.status_code == 200, r.text
        info = json.loads(r.json()["info"])
        assert info["prompt"] == "changed by code" and info["steps"] == 1


@pytest.mark.parametrize("name, args", [
    ("poor man's outpainting", [32, 4, "fill", ["left", "right"]]),
    ("outpainting mk2", ["", 32, 8, ["left", "right"], 1.0, 0.05]),
])
def test_outpainting_grows_the_picture_and_keeps_the_middle(client, name, args):
    payload = {**BASE, "init_images": [_b64(_init())], "script_name": name, "script_args": args,
               "denoising_strength": 0.9}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 200, r.text
    out = _image(r.json()["images"][0]).convert("RGB")
    assert out.size == (128, 64)
    # The old picture is kept (overlaid) away from the feathered seam: the centre is still the red square.
    assert out.getpixel((64, 32)) == (220, 40, 40)


def test_outpainting_refuses_a_bad_direction(client):
    payload = {**BASE, "init_images": [_b64(_init())], "script_name": "poor man's outpainting",
               "script_args": [32, 4, "fill", ["sideways"]]}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 422 and "direction" in r.json()["detail"]


def test_outpainting_mk2_paints_one_window_per_direction_as_a1111(client):
    """mk2 grows the picture one side at a time and inpaints a window of the request's width at that side:
    two directions on a 64 px wide request give 64x64 passes (poor man's paints the whole 128x64 canvas once)."""
    mk2 = client.post("/sdapi/v1/img2img", json={
        **BASE, "init_images": [_b64(_init())], "script_name": "outpainting mk2", "denoising_strength": 0.9,
        "script_args": ["", 32, 8, ["right", "left"], 1.0, 0.05]})
    poor = client.post("/sdapi/v1/img2img", json={
        **BASE, "init_images": [_b64(_init())], "script_name": "poor man's outpainting", "denoising_strength": 0.9,
        "script_args": [32, 4, "fill", ["left", "right"]]})
    assert mk2.status_code == 200 and poor.status_code == 200
    assert "Size: 64x64" in json.loads(mk2.json()["info"])["infotexts"][0]
    assert "Size: 128x64" in json.loads(poor.json()["info"])["infotexts"][0]
    assert _image(mk2.json()["images"][0]).size == (128, 64)
