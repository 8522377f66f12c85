"""Pure image operations around img2img: resize modes, flattening, and the VAE's tensor format.

Behaviour follows AUTOMATIC1111 v1.10.1 (``modules/images.py``, ``modules/processing.py``), written
afresh. Deliberate differences are marked "Differs from A1111" in the docstrings.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

LANCZOS = Image.Resampling.LANCZOS
BICUBIC = Image.Resampling.BICUBIC

# Index = the ``resize_mode`` value of the API and of the UI radio.
RESIZE_MODES = ["Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)"]
RESIZE_JUST, RESIZE_CROP, RESIZE_FILL, RESIZE_LATENT = range(4)

# ``upscale(image, scale) -> image``: an upscaler's ``upscale`` (see modules.upscalers); the result may be of
# any size, and is brought to the exact target size with Lanczos afterwards.
UpscaleFn = Callable[[Image.Image, float], Image.Image]


def _resize_to(im: Image.Image, w: int, h: int, upscale: UpscaleFn | None) -> Image.Image:
    """Resize ``im`` to exactly w x h: Lanczos, or first ``upscale`` when enlarging a non-mask image."""
    if upscale is not None and im.mode != "L":
        scale = max(w / im.width, h / im.height)
        if scale > 1.0:
            im = upscale(im, scale)
    if im.size != (w, h):
        im = im.resize((w, h), resample=LANCZOS)
    return im


def resize_image(resize_mode: int, image: Image.Image, width: int, height: int,
                 upscale: UpscaleFn | None = None) -> Image.Image:
    """Fit ``image`` to ``width`` x ``height`` as A1111's img2img resize modes do.

    0 "Just resize": stretch to WxH.
    1 "Crop and resize": scale to cover WxH keeping the aspect ratio, centre, crop the excess.
    2 "Resize and fill": scale to fit inside WxH, centre, and fill the empty bands on both sides with
      the image's edge row/column stretched across the band (as A1111: a bicubic resize of a
      zero-height/width source box, i.e. 1.125 x the outermost row/column - 0.125 x the next one).
    3 "Just resize (latent upscale)": same as 0 at the image level; the caller resizes the latent.

    ``upscale`` (an upscaler's ``upscale(image, scale)``) is used first when the image must grow and is
    not a mask (mode "L"); Lanczos then brings the result to the exact size. Pass None for the "None"
    upscaler (plain Lanczos).

    Differs from A1111: the result keeps the input's mode (A1111 makes modes 1/2 RGB), so "L" masks
    stay "L"; mode 3 stretches like mode 0 (A1111's function falls into its fill branch for 3, and its
    img2img skips the call for init images); in mode 2 the far band reaches the edge when the free
    space is odd (A1111 leaves one black row/column there).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    if resize_mode in (RESIZE_JUST, RESIZE_LATENT):
        return _resize_to(image, width, height, upscale)
    if resize_mode not in (RESIZE_CROP, RESIZE_FILL):
        raise ValueError(f"unknown resize_mode {resize_mode!r}; expected 0..3 ({', '.join(RESIZE_MODES)})")

    ratio = width / height
    src_ratio = image.width / image.height
    # Crop: match the side that makes the image cover the target; fill: the side that makes it fit.
    match_width = ratio > src_ratio if resize_mode == RESIZE_CROP else ratio < src_ratio
    if match_width:
        src_w, src_h = width, image.height * width // image.width
    else:
        src_w, src_h = image.width * height // image.height, height
    resized = _resize_to(image, max(src_w, 1), max(src_h, 1), upscale)

    res = Image.new(image.mode, (width, height))
    left, top = width // 2 - src_w // 2, height // 2 - src_h // 2
    res.paste(resized, box=(left, top))

    if resize_mode == RESIZE_FILL:
        rw, rh = resized.size
        if ratio < src_ratio and top > 0:
            bottom = height - (top + src_h)
            res.paste(resized.resize((width, top), box=(0, 0, width, 0)), box=(0, 0))
            if bottom > 0:
                res.paste(resized.resize((width, bottom), box=(0, rh, width, rh)), box=(0, top + src_h))
        elif ratio > src_ratio and left > 0:
            right = width - (left + src_w)
            res.paste(resized.resize((left, height), box=(0, 0, 0, height)), box=(0, 0))
            if right > 0:
                res.paste(resized.resize((right, height), box=(rw, 0, rw, height)), box=(left + src_w, 0))
    return res


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)


def flatten(image: Image.Image, background: str | tuple = "#ffffff") -> Image.Image:
    """RGB image with transparency replaced by ``background`` (A1111's ``img2img_background_color``).

    Differs from A1111 (which handles "RGBA" only): every mode with an alpha channel, and palette images
    with a transparent colour, are composited too rather than losing their transparency silently.
    """
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background)
        base.paste(rgba, mask=rgba)
        image = base
    return image.convert("RGB")


def image_to_tensor(images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """PIL image(s) of one size -> float32 tensor [B, 3, H, W] in [-1, 1] (x / 255 * 2 - 1), for the VAE."""
    if isinstance(images, Image.Image):
        images = [images]
    if not images:
        raise ValueError("no images")
    size = images[0].size
    arrays = []
    for im in images:
        if im.size != size:
            raise ValueError(f"all images must have one size: {size} vs {im.size}")
        arrays.append(np.asarray(im.convert("RGB"), dtype=np.float32))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1.0


def tensor_to_images(t: torch.Tensor, *, truncate: bool = False) -> list[Image.Image]:
    """Tensor [B, 3, H, W] (or [3, H, W]) in [-1, 1] -> RGB images.

    ``truncate=False``: clamp, scale to 0..255, round (the exact inverse of ``image_to_tensor``, for images the app
    re-encodes itself). ``truncate=True``: A1111's conversion of decoded pictures, ``uint8(255 * clamp((x + 1) / 2,
    0, 1))``, which truncates.
    """
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"expected [B, 3, H, W], got {tuple(t.shape)}")
    t = t.detach().float().cpu()
    if truncate:
        x = (255.0 * torch.clamp((t + 1.0) / 2.0, min=0.0, max=1.0)).to(torch.uint8)
    else:
        x = ((t + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)
    arr = x.permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a, "RGB") for a in arr]
