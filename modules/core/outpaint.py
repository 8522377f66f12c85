"""Image side of A1111's outpainting scripts: a canvas grown by ``pixels`` in some directions, the mask of the new
area (feathered into the old picture by ``mask_blur``), and two fills for the new area."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

DIRECTIONS = ("left", "right", "up", "down")


@dataclass
class Expanded:
    image: Image.Image  # the grown canvas, new area filled
    mask: Image.Image  # "L": 255 where the picture is new
    box: tuple[int, int, int, int]  # where the original sits in the canvas


def expand(image: Image.Image, pixels: int, directions: list[str], mask_blur: int = 4, fill: str = "edge",
           seed: int = 0, noise_q: float = 1.0, color_variation: float = 0.05) -> Expanded:
    """Grow ``image`` by ``pixels`` on each side in ``directions`` (sizes stay multiples of 8).

    ``fill``: "edge" stretches the outermost row/column over the new area (poor man's outpainting's "fill");
    "noise" fills it with the edge's colours plus seeded noise of ``noise_q`` strength and ``color_variation``
    (Outpainting mk2's idea: the sampler gets something with the image's colour statistics to start from)."""
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"directions must be some of {', '.join(DIRECTIONS)}, got {directions}")
    image = image.convert("RGB")
    left = pixels if "left" in directions else 0
    right = pixels if "right" in directions else 0
    up = pixels if "up" in directions else 0
    down = pixels if "down" in directions else 0
    width, height = image.width + left + right, image.height + up + down
    width8, height8 = width - width % 8, height - height % 8
    src = np.asarray(image, dtype=np.float32)
    # Edge stretch: index every new pixel to the nearest original one.
    ys = np.clip(np.arange(height) - up, 0, image.height - 1)
    xs = np.clip(np.arange(width) - left, 0, image.width - 1)
    canvas = src[ys][:, xs]
    new = np.ones((height, width), dtype=bool)
    new[up:up + image.height, left:left + image.width] = False
    if fill == "noise":
        rng = np.random.default_rng(seed)
        mean = canvas[new].mean(axis=0) if new.any() else src.reshape(-1, 3).mean(axis=0)
        base = canvas * (1 - color_variation) + mean * color_variation
        noise = rng.normal(0, 64.0 * float(noise_q), size=canvas.shape).astype(np.float32)
        canvas = np.where(new[..., None], base + noise, canvas)
    elif fill != "edge":
        raise ValueError(f"fill must be 'edge' or 'noise', got {fill!r}")
    out = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).crop((0, 0, width8, height8))
    mask = Image.fromarray((new * 255).astype(np.uint8), "L").crop((0, 0, width8, height8))
    if mask_blur > 0:
        # Feather into the old picture only: the new area stays fully masked.
        blurred = mask.filter(ImageFilter.GaussianBlur(mask_blur))
        mask = Image.fromarray(np.maximum(np.asarray(blurred), np.asarray(mask)), "L")
    return Expanded(out, mask, (left, up, left + image.width, up + image.height))
