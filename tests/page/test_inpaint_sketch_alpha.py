"""Inpaint sketch's "Mask transparency" (A1111): the drawn area's mask is darkened by the percentage, and the drawing
shows over the picture only that much; checked by pixels."""
from __future__ import annotations

import numpy as np
from PIL import Image

from modules.page import generation, img2img_modes

BLUE = (20, 40, 160)


def _editor() -> dict:
    background = Image.new("RGB", (64, 64), BLUE)
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (16, 16, 48, 48))
    return {"background": background, "layers": [layer], "composite": None}


def test_transparency_darkens_the_mask_and_lets_the_picture_through():
    init, mask = img2img_modes.inpaint_sketch_parts(_editor())
    assert np.asarray(mask)[32, 32] == 255 and np.asarray(mask)[2, 2] == 0
    assert np.asarray(init)[32, 32].tolist() == [255, 255, 255] and np.asarray(init)[2, 2].tolist() == list(BLUE)

    init, mask = img2img_modes.inpaint_sketch_parts(_editor(), mask_alpha=60)
    assert np.asarray(mask)[32, 32] == 102  # 40 % of white
    expected = [round(0.4 * 255 + 0.6 * c) for c in BLUE]
    assert np.abs(np.asarray(init, dtype=int)[32, 32] - expected).max() <= 1
    assert np.asarray(init)[2, 2].tolist() == list(BLUE)

    init, mask = img2img_modes.inpaint_sketch_parts(_editor(), mask_alpha=0, mask_blur=4)
    row = np.asarray(init, dtype=int)[32, :, 0]
    assert row[2] == BLUE[0] and row[32] == 255 and BLUE[0] < row[16] < 255  # the blur softens the edge


def test_the_request_carries_the_darkened_mask():
    values = {"mode": "inpaint sketch", "inpaint_sketch_editor": _editor(), "mask_alpha": 60, "mask_blur": 0,
              "prompt": "x", "steps": 2, "width": 64, "height": 64}
    request = generation.build_request("img2img", values)
    assert np.asarray(request.mask)[32, 32] == 102
    assert np.asarray(request.init_images[0], dtype=int)[32, 32, 2] < 255
