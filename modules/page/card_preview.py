"""A1111's "Replace preview" on an extra-network card: the picture selected in the tab's gallery becomes the
card's preview file, written atomically next to the model.

The file replaced is the preview the card shows now (same name, same format); a card without one gets
``NAME.preview.png`` (A1111's name, and the one our listing finds after ``NAME.png``). A PNG keeps the picture's
infotext, as A1111's does.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from modules.core import fileio

MAX_PREVIEW_PIXELS = 4096 * 4096
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}


class PreviewError(ValueError):
    """A picture that cannot become a preview; the message is for the page."""


def decode_image(data_url: str) -> Image.Image:
    """The image in a ``data:image/...;base64,`` URL (or bare base64)."""
    text = (data_url or "").strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PreviewError("image: not base64 image data") from None
    if not raw:
        raise PreviewError("image: empty; select a picture in the gallery first")
    try:
        image = Image.open(io.BytesIO(raw))
        if image.width * image.height > MAX_PREVIEW_PIXELS:
            raise PreviewError(f"image: {image.width}x{image.height} is too large for a preview")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise PreviewError(f"image: cannot be read ({exc})") from None
    return image


def preview_path(model_path: str | os.PathLike, current_preview: str | os.PathLike | None) -> Path:
    """Where the new preview goes: over the current one, else ``NAME.preview.png`` beside the model."""
    if current_preview:
        return Path(current_preview)
    model = Path(model_path)
    base = model if model.is_dir() else model.with_suffix("")
    return base.parent / f"{base.name}.preview.png"


def write_preview(image: Image.Image, target: Path) -> Path:
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise PreviewError(f"{target.name}: not an image file name ({', '.join(FORMATS)})")
    out = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if image.info.get("parameters"):
            info.add_text("parameters", str(image.info["parameters"]))
        image.save(out, "PNG", pnginfo=info)
    else:
        image.convert("RGB" if fmt == "JPEG" else image.mode if image.mode in ("RGB", "RGBA") else "RGB").save(out, fmt)
    fileio.atomic_write_bytes(target, out.getvalue())
    return target
