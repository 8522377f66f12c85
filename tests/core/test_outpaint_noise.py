"""Outpainting mk2's noise fill (modules.core.outpaint.matched_noise): the new area gets the known picture's
colours (each channel's distribution matched), the known area is untouched, a seed repeats it."""
from __future__ import annotations

import numpy as np
from PIL import Image

from modules.core import outpaint


def _picture() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = np.zeros((32, 48, 3))
    image[:, :24] = (0.9, 0.1, 0.2)
    image[:, 24:] = (0.1, 0.3, 0.8)
    return np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)


def test_the_new_area_takes_the_known_colour_distribution_and_the_rest_is_kept():
    image = _picture()
    new = np.zeros(image.shape[:2], dtype=bool)
    new[:, 36:] = True
    out = outpaint.matched_noise(image, new, noise_q=1.0, color_variation=0.05, seed=3)
    assert np.array_equal(out[~new], image[~new])
    for c in range(3):
        filled, known = np.sort(out[..., c][new]), np.sort(image[..., c][~new])
        assert abs(np.median(filled) - np.median(known)) < 0.05
        assert filled.min() >= known.min() - 1e-9 and filled.max() <= known.max() + 1e-9
    assert out[..., 0][new].std() > 0.1  # both colours of the picture appear, not one flat value


def test_seeded_and_shaped_by_noise_q():
    image, new = _picture(), np.zeros((32, 48), dtype=bool)
    new[:8] = True
    a = outpaint.matched_noise(image, new, seed=5)
    assert np.array_equal(a, outpaint.matched_noise(image, new, seed=5))
    assert not np.array_equal(a, outpaint.matched_noise(image, new, seed=5, noise_q=0.2))


def test_expand_with_noise_grows_and_masks_the_new_side():
    picture = Image.fromarray((_picture() * 255).astype(np.uint8))
    grown = outpaint.expand(picture, 16, ["right"], mask_blur=0, fill="noise", seed=2)
    assert grown.image.size == (64, 32) and grown.box == (0, 0, 48, 32)
    assert np.array_equal(np.asarray(grown.image)[:, :48], np.asarray(picture))
    assert np.asarray(grown.mask)[:, 48:].min() == 255 and np.asarray(grown.mask)[:, :48].max() == 0
