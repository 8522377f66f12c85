"""A1111's "Enable postprocessing operations in txt2img and img2img tabs" (``postprocessing_enable_in_main_ui``):
the named Extras operations (an extension's ``ScriptPostprocessing`` and the built-in Upscale) run on every
txt2img/img2img picture as always-on scripts, their ``pp.info`` in the infotext; ``postprocessing_disable_in_extras``
takes one out of the Extras endpoints. Checked by pixels through the API on a tiny model."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

from tests.extension_app import extension_api

EXTENSION = '''
import gradio as gr
from PIL import ImageOps
from modules import scripts_postprocessing


class Invert(scripts_postprocessing.ScriptPostprocessing):
    name = "Invert"
    order = 500

    def ui(self):
        return {"enable": gr.Checkbox(label="Invert", value=True), "note": gr.Textbox(value="plain")}

    def process(self, pp, enable, note):
        if enable:
            pp.image = ImageOps.invert(pp.image.convert("RGB"))
            pp.info["Inverted"] = note
'''

BASE = {"prompt": "a red square", "steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler",
        "denoising_strength": 0.5}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return extension_api(tmp_path_factory.mktemp("pp-main-ui"), "pp-invert", "invert.py", EXTENSION, config={
        "postprocessing_enable_in_main_ui": ["Invert", "Upscale"],
        "postprocessing_disable_in_extras": ["Invert"]})


def _image(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB")


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _generate(client, route="txt2img", **extra) -> tuple[Image.Image, str]:
    r = client.post(f"/sdapi/v1/{route}", json={**BASE, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    return _image(body["images"][0]), json.loads(body["info"])["infotexts"][0]


def test_the_operations_are_always_on_scripts_of_both_tabs(app):
    _engine, client = app
    info = client.get("/sdapi/v1/script-info").json()
    for tab in (False, True):
        names = [s["name"] for s in info if s["is_alwayson"] and s["is_img2img"] is tab]
        assert names[-2:] == ["invert", "upscale"]  # A1111's order: Invert (500) before Upscale (1000)


def test_an_extension_operation_changes_each_txt2img_picture_and_writes_its_infotext(app):
    _engine, client = app
    plain, plain_text = _generate(client, alwayson_scripts={"invert": {"args": [False]}})
    inverted, text = _generate(client, alwayson_scripts={"invert": {"args": [True, "by the test"]}})
    assert np.array_equal(np.asarray(inverted), 255 - np.asarray(plain))
    assert "Inverted: by the test" in text and "Inverted" not in plain_text
    default, default_text = _generate(client)  # the control's default (True) applies without arguments
    assert np.array_equal(np.asarray(default), np.asarray(inverted)) and "Inverted: plain" in default_text


def test_the_builtin_upscale_runs_after_it_on_img2img(app):
    _engine, client = app
    init = Image.new("RGB", (64, 64), (30, 60, 200))
    img2img = {"init_images": [_b64(init)]}
    plain, _ = _generate(client, "img2img", **img2img, alwayson_scripts={"invert": {"args": [False]}})
    upscale_args = [True, 0, 2.0, 512, 512, True, "Nearest", "None", 0.0]
    big, text = _generate(client, "img2img", **img2img, alwayson_scripts={
        "invert": {"args": [True]}, "upscale": {"args": upscale_args}})
    assert big.size == (128, 128)
    expected = ImageOps.invert(plain).resize((128, 128), Image.NEAREST)
    assert np.array_equal(np.asarray(big), np.asarray(expected))
    assert "Postprocess upscale by: 2" in text and "Postprocess upscaler: Nearest" in text


def test_disable_in_extras_takes_it_out_of_the_extras_endpoint(app):
    _engine, client = app
    source = Image.new("RGB", (16, 16), (10, 200, 30))
    r = client.post("/sdapi/v1/extra-single-image", json={"image": _b64(source), "upscaling_resize": 1,
                                                          "upscaler_1": "None"})
    assert r.status_code == 200, r.text
    assert np.array_equal(np.asarray(_image(r.json()["image"])), np.asarray(source))


def test_disabling_upscale_in_extras_leaves_the_picture_its_size(app):
    engine, client = app
    source = Image.new("RGB", (16, 16), (10, 200, 30))
    engine.options.set("postprocessing_disable_in_extras", ["Invert", "Upscale"])
    try:
        r = client.post("/sdapi/v1/extra-single-image", json={"image": _b64(source), "upscaling_resize": 2,
                                                              "upscaler_1": "Nearest"})
    finally:
        engine.options.set("postprocessing_disable_in_extras", ["Invert"])
    assert r.status_code == 200, r.text
    assert np.array_equal(np.asarray(_image(r.json()["image"])), np.asarray(source))
