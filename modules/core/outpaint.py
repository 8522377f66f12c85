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
    "noise" fills it with :func:`matched_noise` (Outpainting mk2's: the sampler starts from noise with the
    picture's spectrum and colours)."""
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
    if fill == "noise" and new.any():
        noise = matched_noise(canvas / 255.0, new, noise_q=noise_q, color_variation=color_variation, seed=seed)
        canvas = np.where(new[..., None], noise * 255.0, canvas)
    elif fill not in ("edge", "noise"):
        raise ValueError(f"fill must be 'edge' or 'noise', got {fill!r}")
    out = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)).crop((0, 0, width8, height8))
    mask = Image.fromarray((new * 255).astype(np.uint8), "L").crop((0, 0, width8, height8))
    if mask_blur > 0:
        # Feather into the old picture only: the new area stays fully masked.
        blurred = mask.filter(ImageFilter.GaussianBlur(mask_blur))
        mask = Image.fromarray(np.maximum(np.asarray(blurred), np.asarray(mask)), "L")
    return Expanded(out, mask, (left, up, left + image.width, up + image.height))


def _fft2(data: np.ndarray) -> np.ndarray:
    """Centred, orthonormal 2-D FFT of every channel of an H x W x C array."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(data, axes=(0, 1)), axes=(0, 1), norm="ortho"), axes=(0, 1))


def _ifft2(data: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(data, axes=(0, 1)), axes=(0, 1), norm="ortho"), axes=(0, 1))


def _low_pass(height: int, width: int) -> np.ndarray:
    """1 / ((x² + 1)(y² + 1)) over [-1, 1]² stretched to the aspect ratio: keeps the noise's coarse structure."""
    short = min(width, height)
    x = (np.arange(width) / width * 2.0 - 1.0) * (width / short)
    y = (np.arange(height) / height * 2.0 - 1.0) * (height / short)
    return 1.0 / np.outer(y ** 2 + 1.0, x ** 2 + 1.0)


def _match_histogram(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values`` (N) mapped so that their distribution is ``reference``'s (rank -> reference quantile)."""
    if values.size == 0 or reference.size == 0:
        return values
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    quantiles = ranks / max(values.size - 1, 1)
    return np.interp(quantiles, np.linspace(0.0, 1.0, reference.size), np.sort(reference))


def matched_noise(image: np.ndarray, new: np.ndarray, *, noise_q: float = 1.0, color_variation: float = 0.05,
                  seed: int = 0) -> np.ndarray:
    """Noise for the ``new`` area of ``image`` (H x W x 3 in [0, 1]) shaped like the known picture, A1111's
    Outpainting mk2 idea: low-passed random noise (``color_variation``: how much its channels differ) takes the
    amplitude spectrum of the known picture raised to ``noise_q`` (lower: more detail) and its phase, then each
    channel's values are matched to the known picture's colour distribution. The known area is returned as is."""
    known = ~new
    mask = new[..., None].astype(np.float64)
    windowed = image * (1.0 - mask)
    peak = windowed.max()
    windowed = windowed / peak if peak > 0 else windowed
    windowed = windowed + image[known].mean() * mask if known.any() else windowed
    source = _fft2(windowed)
    magnitude = np.abs(source)
    phase = np.divide(source, magnitude, out=np.ones_like(source), where=magnitude > 0)

    rng = np.random.default_rng(seed)
    noise = rng.random(image.shape)
    grey = noise.mean(axis=2, keepdims=True)
    noise = noise * color_variation + grey * (1.0 - color_variation)
    noise = np.real(_ifft2(_fft2(noise) * _low_pass(image.shape[0], image.shape[1])[..., None]))
    shaped = np.real(_ifft2(np.abs(_fft2(noise)) ** 2 * magnitude ** float(noise_q) * phase))
    shaped -= shaped.min()
    top = shaped.max()
    shaped = shaped / top if top > 0 else shaped
    if known.any():
        for c in range(image.shape[2]):
            shaped[..., c][new] = _match_histogram(shaped[..., c][new], image[..., c][known])
    return np.clip(image * (1.0 - mask) + shaped * mask, 0.0, 1.0)
