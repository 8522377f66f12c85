"""An extension's own ``<name:...>`` prompt tag (A1111's ``extra_networks.register_extra_network``): its handler's
``activate(p, params_list)`` gets the running generation's ``p`` and the tag's arguments (what it writes in
``p.extra_generation_params`` reaches the infotext), the tag is not in the prompt the model sees, and
``deactivate(p)`` runs when the generation ends."""
from __future__ import annotations

import base64
import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

from tests.extension_app import extension_api

EXTENSION = '''
from modules import extra_networks

CALLS = []


class ExtraNetworkColor(extra_networks.ExtraNetwork):
    def __init__(self):
        super().__init__("color")

    def activate(self, p, params_list):
        CALLS.append(("activate", type(p).__name__, [x.items for x in params_list]))
        if params_list:
            p.extra_generation_params["Color tag"] = params_list[0].items[0]

    def deactivate(self, p):
        CALLS.append(("deactivate", type(p).__name__))


extra_networks.register_extra_network(ExtraNetworkColor())
extra_networks.register_extra_network_alias(ExtraNetworkColor(), "colour")

from modules import processing, scripts

INFOTEXTS = []


class InfotextWriter(scripts.Script):
    def title(self):
        return "infotext writer"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def postprocess_image(self, p, pp):
        INFOTEXTS.append(processing.create_infotext(p, p.all_prompts, p.all_seeds, p.all_subseeds, None, 0,
                                                    p.batch_index))
'''

BASE = {"steps": 2, "width": 64, "height": 64, "seed": 3, "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return extension_api(tmp_path_factory.mktemp("ext-network"), "color-tag", "color_tag.py", EXTENSION)


def _module(engine):
    from modules.scripting import loading, runtime

    ext = runtime.host(engine).extensions.find("color-tag")
    return sys.modules[loading.module_name_for(ext.canonical_name, ext.path / "scripts" / "color_tag.py")]


def _calls(engine) -> list:
    from modules.scripting import loading, runtime

    ext = runtime.host(engine).extensions.find("color-tag")
    return sys.modules[loading.module_name_for(ext.canonical_name, ext.path / "scripts" / "color_tag.py")].CALLS


def _run(client, prompt: str) -> tuple[np.ndarray, str]:
    r = client.post("/sdapi/v1/txt2img", json={**BASE, "prompt": prompt})
    assert r.status_code == 200, r.text
    body = r.json()
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).convert("RGB"))
    return image, json.loads(body["info"])["infotexts"][0]


def test_the_tag_reaches_the_handler_with_p_and_leaves_the_prompt(app):
    engine, client = app
    calls = _calls(engine)
    calls.clear()
    tagged, text = _run(client, "a red cat <color:red>")
    assert calls == [("activate", "StableDiffusionProcessing", [["red"]]), ("deactivate", "StableDiffusionProcessing")]
    assert "Color tag: red" in text
    plain, plain_text = _run(client, "a red cat")
    assert np.array_equal(tagged, plain) and "Color tag" not in plain_text


def test_the_alias_reaches_the_same_handler(app):
    engine, client = app
    calls = _calls(engine)
    calls.clear()
    _image, text = _run(client, "a cat <colour:blue>")
    assert "Color tag: blue" in text and calls[0] == ("activate", "StableDiffusionProcessing", [["blue"]])


def test_create_infotext_in_a1111s_form_gives_each_pictures_infotext(app):
    engine, client = app
    texts = _module(engine).INFOTEXTS
    texts.clear()
    r = client.post("/sdapi/v1/txt2img", json={**BASE, "prompt": "a cat", "batch_size": 2})
    assert r.status_code == 200, r.text
    assert texts == json.loads(r.json()["info"])["infotexts"]
    assert "Seed: 3," in texts[0] and "Seed: 4," in texts[1]
