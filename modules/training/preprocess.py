"""Preparing a folder of pictures for training (A1111's "Preprocess images", in 1.10 the Extras "postprocessing
for training" scripts): every picture is brought to the training size, optionally mirrored, and written with a
``.txt`` caption beside it. Offline and model-free: captions come from the picture's own ``.txt`` file or its
file name (the same rules as the trainer's).

Cropping modes:
* ``Resize``: stretched to the size.
* ``Center crop``: scaled to cover the size, the middle kept.
* ``Auto-sized crop``: the output keeps the picture's aspect ratio at about the size's pixel count, both sides
  multiples of 64 (for "Do not resize images" training), the middle kept.
* ``Split oversized images``: a picture much longer than the size's shape (by more than the threshold) is
  scaled to the size's short side and cut into overlapping tiles along its long side; others are center-cropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from modules.core.fileio import atomic_write_bytes, atomic_write_text
from modules.core.request import RequestError
from modules.training.dataset import IMAGE_SUFFIXES, caption_from_filename

__all__ = ["PreprocessParams", "preprocess_folder", "MODES", "CAPTIONS"]

MODES = ("Auto-sized crop", "Center crop", "Split oversized images", "Resize")
CAPTIONS = ("Keep .txt captions, else file name", "File name", "None")


@dataclass
class PreprocessParams:
    src: str
    dst: str
    width: int = 512
    height: int = 512
    mode: str = "Auto-sized crop"
    split_threshold: float = 0.5
    overlap_ratio: float = 0.2
    flip: bool = False
    caption: str = CAPTIONS[0]

    def validate(self) -> tuple[Path, Path]:
        src, dst = Path(str(self.src or "").strip()), Path(str(self.dst or "").strip())
        if not str(self.src or "").strip() or not src.is_dir():
            raise RequestError("process_src", f"source directory {str(self.src)!r} does not exist")
        if not str(self.dst or "").strip():
            raise RequestError("process_dst", "choose a destination directory")
        if dst.resolve() == src.resolve():
            raise RequestError("process_dst", "must differ from the source directory")
        for name in ("width", "height"):
            value = int(getattr(self, name))
            if not 8 <= value <= 8192:
                raise RequestError(f"process_{name}", f"must be from 8 to 8192, got {value}")
        if self.mode not in MODES:
            raise RequestError("process_mode", f"must be one of {', '.join(MODES)}")
        if self.caption not in CAPTIONS:
            raise RequestError("process_caption", f"must be one of {', '.join(CAPTIONS)}")
        if not 0 <= float(self.overlap_ratio) < 1:
            raise RequestError("process_overlap_ratio", "must be in [0, 1)")
        return src, dst


def _center_crop(image: Image.Image, w: int, h: int) -> Image.Image:
    return ImageOps.fit(image, (w, h), method=Image.LANCZOS, centering=(0.5, 0.5))


def _auto_size(image: Image.Image, w: int, h: int) -> tuple[int, int]:
    area, aspect = w * h, image.width / image.height
    out_w = max(64, round(math.sqrt(area * aspect) / 64) * 64)
    out_h = max(64, round(math.sqrt(area / aspect) / 64) * 64)
    return out_w, out_h


def _split(image: Image.Image, w: int, h: int, threshold: float, overlap: float) -> list[Image.Image]:
    """Tiles of w x h along the picture's long side, or one center crop when it is not oversized."""
    ratio = (image.width / image.height) / (w / h)
    long_x = ratio > 1
    excess = ratio if long_x else 1 / ratio
    if excess - 1 <= threshold:
        return [_center_crop(image, w, h)]
    if long_x:
        scaled = image.resize((max(w, round(image.width * h / image.height)), h), Image.LANCZOS)
        length, tile = scaled.width, w
    else:
        scaled = image.resize((w, max(h, round(image.height * w / image.width))), Image.LANCZOS)
        length, tile = scaled.height, h
    count = max(1, math.ceil((length - tile * overlap) / (tile * (1 - overlap))))
    starts = [round(i * (length - tile) / (count - 1)) if count > 1 else 0 for i in range(count)]
    return [scaled.crop((s, 0, s + w, h)) if long_x else scaled.crop((0, s, w, s + h)) for s in starts]


def _caption(path: Path, mode: str) -> str | None:
    if mode == "None":
        return None
    sidecar = path.with_suffix(".txt")
    if mode == CAPTIONS[0] and sidecar.is_file():
        return sidecar.read_text(encoding="utf-8", errors="replace").strip()
    return caption_from_filename(path.stem)


def _save(image: Image.Image, path: Path, caption: str | None) -> None:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    if caption is not None:
        atomic_write_text(path.with_suffix(".txt"), caption)


def preprocess_folder(params: PreprocessParams) -> str:
    """Process every picture of ``src`` into ``dst``; returns a one-line report. RequestError names the field."""
    src, dst = params.validate()
    w, h = int(params.width), int(params.height)
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise RequestError("process_src", f"{src} holds no pictures")
    dst.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    for index, path in enumerate(files):
        try:
            with Image.open(path) as im:
                im.load()
                image = im.convert("RGB")
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            skipped.append(path.name)
            continue
        if params.mode == "Resize":
            pieces = [image.resize((w, h), Image.LANCZOS)]
        elif params.mode == "Center crop":
            pieces = [_center_crop(image, w, h)]
        elif params.mode == "Auto-sized crop":
            pieces = [_center_crop(image, *_auto_size(image, w, h))]
        else:
            pieces = _split(image, w, h, float(params.split_threshold), float(params.overlap_ratio))
        caption = _caption(path, params.caption)
        for n, piece in enumerate(pieces):
            out = [piece] + ([ImageOps.mirror(piece)] if params.flip else [])
            for k, variant in enumerate(out):
                _save(variant, dst / f"{index:05d}-{n}-{k}-{path.stem}.png", caption)
                written += 1
    report = f"Preprocessed {len(files) - len(skipped)} pictures into {written} files in {dst}"
    if skipped:
        report += f"; not pictures: {', '.join(skipped)}"
    return report
