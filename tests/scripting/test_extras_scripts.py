"""Extensions' Extras scripts (A1111's ``scripts_postprocessing.ScriptPostprocessing``) run in
``/sdapi/v1/extra-single-image`` / ``extra-batch-images`` and the Extras tab's handler, around the built-in
upscale, in A1111's order (``postprocessing_operation_order`` first, then ``order``), with their controls' values;
one that raises is skipped and the rest goes on."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.extension_app import extension_api

EXTENSION = '''
import gradio as gr
from PIL import ImageOps
from modules import scripts_postprocessing

SEEN = []


class Invert(scripts_postprocessing.ScriptPostprocessing):
    name = "Invert"
    order = 500  # before the upscale

    def ui(self):
        return {"enable": gr.Checkbox(label="Invert", value=True)}

    def process_firstpass(self, pp, enable):
        SEEN.append(("firstpass", self.name, pp.image.size))

    def process(self, pp, enable):
        SEEN.append(("process", self.name, pp.image.size))
        if enable:
            pp.image = ImageOps.invert(pp.image.convert("RGB"))
            pp.info["Inverted"] = "yes"


class Measure(scripts_postprocessing.ScriptPostprocessing):
    name = "Measure"
    order = 2000  # after the upscale

    def ui(self):
        return {"label": gr.Textbox(value="measured")}

    def process(self, pp, label):
        SEEN.append(("process", self.name, pp.image.size))
        pp.info["Measure"] = f"{label} {pp.image.width}"


class Broken(scripts_postprocessing.ScriptPostprocessing):
    name = "Broken"
    order = 3000

    def process(self, pp):
        raise RuntimeError("the extension broke")
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return extension_api(tmp_path_factory.mktemp("extras-scripts"), "pp-extension", "pp_scripts.py", EXTENSION)


def _seen(engine) -> list:
    import sys

    from modules.scripting import loading, runtime

    ext = runtime.host(engine).extensions.find("pp-extension")
    return sys.modules[loading.module_name_for(ext.canonical_name, ext.path / "scripts" / "pp_scripts.py")].SEEN


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _source() -> Image.Image:
    image = Image.new("RGB", (16, 16), (10, 200, 30))
    image.paste((250, 0, 0), (0, 0, 8, 8))
    return image


def _single(client, **extra) -> dict:
    r = client.post("/sdapi/v1/extra-single-image", json={
        "image": _b64(_source()), "upscaling_resize": 2, "upscaler_1": "Nearest", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_api_runs_them_around_the_upscale_in_order(app):
    engine, client = app
    engine.options.set("postprocessing_operation_order", [])
    seen = _seen(engine)
    seen.clear()
    body = _single(client)
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB"))
    expected = np.asarray(Image.eval(_source(), lambda v: 255 - v).resize((32, 32), Image.NEAREST))
    assert np.array_equal(out, expected)  # inverted (default control value True), then upscaled
    assert seen == [("firstpass", "Invert", (16, 16)), ("process", "Invert", (16, 16)),
                    ("process", "Measure", (32, 32))]
    assert "Inverted: yes" in body["html_info"] and "Measure: measured 32" in body["html_info"]


def test_the_operation_order_setting_comes_first(app):
    engine, client = app
    engine.options.set("postprocessing_operation_order", ["Measure", "Upscale"])
    try:
        seen = _seen(engine)
        seen.clear()
        body = _single(client)
        assert [s[1] for s in seen if s[0] == "process"] == ["Measure", "Invert"]
        assert "Measure: measured 16" in body["html_info"]
    finally:
        engine.options.set("postprocessing_operation_order", [])


def test_batch_images_and_the_extras_tab_with_its_values(app):
    engine, client = app
    r = client.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": _b64(_source()), "name": "a.png"}, {"data": _b64(_source()), "name": "b.png"}],
        "upscaling_resize": 1, "upscaler_1": "None"})
    assert r.status_code == 200 and len(r.json()["images"]) == 2
    from modules.page.extras import run_extras_ui
    from modules.scripting import runtime

    out = run_extras_ui(engine, image=_source(), upscaling_resize=1.0, save=False,
                        scripts=runtime.host(engine).extras_scripts({"Invert": {"enable": False}}))
    assert out.error == "" and np.array_equal(np.asarray(out.images[0].convert("RGB")), np.asarray(_source()))
