"""The /sdapi/v1 generation endpoints: A1111's fields, response shape and errors."""
from __future__ import annotations

import base64
import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from modules.settings import cmd_args
from modules.core import infotext
from tests import tiny_models


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("apidata")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "tiny.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    return TestClient(webui.create_app(engine, args))


def _png(resp_image: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(resp_image)))


def test_txt2img_shape_and_infotext(client):
    payload = {"prompt": "a cat", "steps": 3, "width": 64, "height": 64, "seed": 7, "batch_size": 2,
               "sampler_name": "Euler", "some_field_of_another_version": 1}
    r = client.post("/sdapi/v1/txt2img", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"images", "parameters", "info"}
    assert len(body["images"]) == 2
    img = _png(body["images"][1])
    assert img.size == (64, 64)
    info = json.loads(body["info"])
    assert info["all_seeds"] == [7, 8]
    assert info["infotexts"][1] == img.info["parameters"]
    fields = infotext.parse_generation_parameters(img.info["parameters"])
    assert fields["Seed"] == "8" and fields["Sampler"] == "Euler" and fields["Steps"] == "3"
    assert body["parameters"]["prompt"] == "a cat" and body["parameters"]["cfg_scale"] == 7.0
    assert "some_field_of_another_version" not in body["parameters"]


def test_sampler_index_default_is_euler(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "width": 64, "height": 64})
    assert r.status_code == 200
    assert json.loads(r.json()["info"])["sampler_name"] == "Euler"


def test_img2img_with_data_prefix(client):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(buf, format="PNG")
    b64 = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    r = client.post("/sdapi/v1/img2img", json={"init_images": [b64], "steps": 4, "denoising_strength": 0.5, "width": 64, "height": 64})
    assert r.status_code == 200, r.text
    assert _png(r.json()["images"][0]).size == (64, 64)
    assert r.json()["parameters"]["init_images"] is None


@pytest.mark.parametrize("payload, field", [
    ({"steps": 0}, "steps"),
    ({"width": 65}, "width"),
    ({"steps": "many"}, "steps"),
    ({"sampler_name": "Bogus"}, "sampler_name"),
])
def test_bad_input_is_422_naming_the_field(client, payload, field):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, **payload})
    assert r.status_code == 422
    body = r.json()
    assert set(body) >= {"error", "detail", "body", "errors"}
    assert field in json.dumps(body)


def test_bad_base64_is_422(client):
    r = client.post("/sdapi/v1/img2img", json={"init_images": ["not-an-image"], "steps": 2, "width": 64, "height": 64})
    assert r.status_code == 422
    assert "init_images[0]" in r.json()["detail"]
    r = client.post("/sdapi/v1/img2img", json={"steps": 2})
    assert r.status_code == 422 and "Init image not found" in r.text


def test_progress_idle(client):
    r = client.get("/sdapi/v1/progress")
    assert r.status_code == 200
    assert r.json()["progress"] == 0 and r.json()["state"]["job_count"] == 0
