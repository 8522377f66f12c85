"""An extension's upscaler and face restorer as reactor-style extensions add them: an ``Upscaler`` subclass with
``UpscalerData`` in its ``scalers`` is listed in /sdapi/v1/upscalers and ``shared.sd_upscalers`` and does the Extras
upscale; ``face_restoration.restore_faces`` leaves the picture alone until a ``FaceRestoration`` is registered in
``shared.face_restorers``, then uses it."""
from __future__ import annotations

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image, ImageOps

from modules.scripting import runtime
from tests.extension_app import extension_api

EXTENSION = '''
from PIL import Image, ImageOps
from modules.upscaler import Upscaler, UpscalerData


class UpscalerInvertDouble(Upscaler):
    def __init__(self, dirname=None):
        self.name = "InvertDouble"
        self.user_path = dirname
        super().__init__()
        self.scalers = [UpscalerData("Invert double", None, self, 2)]

    def do_upscale(self, img, selected_model):
        img = ImageOps.invert(img.convert("RGB"))
        return img.resize((img.width * 2, img.height * 2), Image.NEAREST)

    def load_model(self, path):
        return None
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    engine, client = extension_api(tmp_path_factory.mktemp("ext-upscaler"), "invert-upscaler", "invert_upscaler.py",
                                   EXTENSION)
    with runtime.using(engine):
        yield engine, client


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_the_extension_upscaler_is_listed_and_upscales_in_extras(app):
    engine, client = app
    from modules import shared

    listed = {u["name"]: u for u in client.get("/sdapi/v1/upscalers").json()}
    assert "Invert double" in listed
    data = next(u for u in shared.sd_upscalers if u.name == "Invert double")
    assert type(data).__name__ == "UpscalerData" and data.scaler.name == "InvertDouble"
    source = Image.new("RGB", (16, 16), (10, 200, 30))
    source.paste((250, 0, 0), (0, 0, 8, 8))
    r = client.post("/sdapi/v1/extra-single-image", json={"image": _b64(source), "upscaling_resize": 2,
                                                          "upscaler_1": "Invert double"})
    assert r.status_code == 200, r.text
    out = np.asarray(Image.open(io.BytesIO(base64.b64decode(r.json()["image"]))).convert("RGB"))
    assert np.array_equal(out, np.asarray(ImageOps.invert(source).resize((32, 32), Image.NEAREST)))
    engine.upscalers.refresh()  # a rescan of the model folders keeps it
    assert "Invert double" in engine.upscalers


def test_restore_faces_is_a_no_op_until_a_restorer_is_registered(app):
    from modules import face_restoration, shared

    picture = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert face_restoration.restore_faces(picture) is picture

    class Darken(face_restoration.FaceRestoration):
        def name(self):
            return "Darken"

        def restore(self, np_image):
            return np_image // 2

    shared.face_restorers.append(Darken())
    try:
        assert np.array_equal(face_restoration.restore_faces(picture), picture // 2)
    finally:
        shared.face_restorers.clear()


def test_modelloader_lists_model_files_and_never_downloads(tmp_path, app):
    from modules import modelloader

    folder = tmp_path / "SwinIR"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.pth").write_bytes(b"a")
    (folder / "sub" / "b.safetensors").write_bytes(b"b")
    (folder / "notes.txt").write_text("not a model", encoding="utf-8")
    found = modelloader.load_models(str(folder), ext_filter=[".pth", ".safetensors"])
    assert sorted(map(os.path.basename, found)) == ["a.pth", "b.safetensors"]
    url = "https://example.invalid/models/003_realSR.pth"
    assert modelloader.load_models(str(tmp_path / "empty"), model_url=url, ext_filter=[".pth"]) == [url]
    assert modelloader.friendly_name(url) == "003_realSR"
    with pytest.raises(FileNotFoundError, match="does not download"):
        modelloader.load_file_from_url(url, model_dir=str(folder))
    (folder / "003_realSR.pth").write_bytes(b"c")
    assert modelloader.load_file_from_url(url, model_dir=str(folder)) == str(folder / "003_realSR.pth")
