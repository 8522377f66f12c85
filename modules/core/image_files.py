"""Saving, reading and encoding images the way A1111 does (spec §6.2 "Storage", ``modules/images.py``).

* Files are ``NNNNN-<pattern>.<ext>`` (``00042-1234567890.png`` with the default ``[seed]`` pattern), numbered
  after the highest leading number already in the folder, written to a temporary file first and moved into place
  with ``os.replace`` — a reader never sees half a file, a failure leaves nothing behind.
* Infotext goes into the PNG text chunk ``parameters`` (``tEXt``, or ``iTXt`` when it is not Latin-1), into the
  EXIF ``UserComment`` of JPEG/WEBP (``UNICODE\\0`` + UTF-16, as ``piexif.helper.UserComment.dump(...,
  encoding="unicode")`` writes it) and into the GIF comment.
* :func:`read_info_from_image` reads all of those back (and NovelAI's PNG fields), like A1111's.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import io
import json
import math
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from PIL import Image, ImageColor, ImageOps, PngImagePlugin

from modules.core.fileio import atomic_write_bytes, fsync_dir as _fsync_dir

__all__ = [
    "save_image",
    "dated_output_dir",
    "next_sequence_number",
    "read_info_from_image",
    "image_grid",
    "encode_image_base64",
    "decode_base64_image",
    "write_params_txt",
    "atomic_write_bytes",
    "exif_user_comment",
    "decode_user_comment",
    "IGNORED_INFO_KEYS",
]

# image.info keys that are not generation info (A1111's IGNORED_INFO_KEYS).
IGNORED_INFO_KEYS = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif",
    "loop", "background", "timestamp", "duration", "progressive", "progression",
    "icc_profile", "chromaticity", "photoshop",
})

_FORMATS = MappingProxyType({"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "gif": "GIF"})

# Not data but synchronisation: "pick the next number, move the file there" must be one step for all threads of the
# process, or two concurrent saves would take the same number (os.replace silently overwrites).
_save_lock = threading.Lock()

_re_pattern = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)")
_invalid_filename_chars = '#<>:"/\\|?*\n\r\t'
_invalid_filename_prefix = " "
_invalid_filename_postfix = " ."
_re_nonletters = re.compile(r"[\s\W_]+")
_max_filename_part_length = 128


# ------------------------------------------------------------------------------------------------ helpers


def _sanitize_filename_part(text: Any, replace_spaces: bool = True) -> str | None:
    """A1111's ``sanitize_filename_part``."""
    if text is None:
        return None
    text = str(text)
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate({ord(x): "_" for x in _invalid_filename_chars})
    text = text.lstrip(_invalid_filename_prefix)[:_max_filename_part_length]
    text = text.rstrip(_invalid_filename_postfix)
    return text


def _apply_pattern(pattern: str, tags: Mapping[str, Any]) -> str:
    """``[tag]`` substitution like A1111's ``FilenameGenerator.apply``: known tags (case-insensitive) are replaced by
    their sanitised value, unknown ones are kept as written."""
    lowered = {str(k).lower(): v for k, v in tags.items()}
    res = ""
    for m in _re_pattern.finditer(pattern):
        text, tag = m.groups()
        if tag is None:
            res += text
            continue
        value = lowered.get(tag.lower())
        if value is not None:
            res += text + (_sanitize_filename_part(value, replace_spaces=False) or "")
        else:
            res += f"{text}[{tag}]"
    return res


def next_sequence_number(directory: Path | str, basename: str = "") -> int:
    """A1111's ``get_next_sequence_number``: 1 + the largest leading ``NNNNN`` of the files in ``directory``."""
    result = -1
    prefix = f"{basename}-" if basename else ""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(prefix):
            parts = os.path.splitext(name[len(prefix):])[0].split("-")
            try:
                result = max(int(parts[0]), result)
            except ValueError:
                pass
    return result + 1


def _write_temp(directory: Path, suffix: str, writer) -> Path:
    """Create a hidden temporary file in ``directory``, fill it with ``writer(fileobj)`` and fsync it.

    On any error the temporary file is removed and the error re-raised.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; images are for the user's other programs too
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_params_txt(path: Path | str, infotext: str) -> Path:
    """Atomically write A1111's ``params.txt`` (the last generation's infotext, UTF-8)."""
    return atomic_write_bytes(path, (infotext or "").encode("utf-8"))


def dated_output_dir(root: Path | str, category: str, date: _dt.date | _dt.datetime | None = None) -> Path:
    """``root/category/YYYY-MM-DD`` (A1111's ``outputs/txt2img-images/2024-05-01`` layout); not created here."""
    if date is None:
        date = _dt.date.today()
    return Path(root) / category / date.strftime("%Y-%m-%d")


# ------------------------------------------------------------------------------------------------ EXIF


def exif_user_comment(text: str) -> bytes:
    """EXIF bytes whose ``UserComment`` holds ``text`` (``UNICODE\\0`` + UTF-16BE), as A1111 writes them."""
    import piexif
    import piexif.helper

    return piexif.dump({"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text or "",
                                                                                             encoding="unicode")}})


def decode_user_comment(data: bytes | str) -> str:
    """Decode an EXIF ``UserComment`` value: 8-byte charset header (``ASCII``, ``UNICODE``, ``JIS``, undefined).

    ``UNICODE`` payloads are UTF-16: a BOM decides the byte order if present, otherwise the byte order whose
    decoding puts the zero bytes of ASCII text in the high byte (piexif and A1111 write big-endian, some tools
    little-endian). Trailing NULs are removed.
    """
    if isinstance(data, str):
        return data.rstrip("\x00")
    data = bytes(data)
    header, payload = data[:8], data[8:]
    if header == b"UNICODE\x00":
        if payload[:2] == b"\xfe\xff":
            text = payload[2:].decode("utf-16-be", errors="replace")
        elif payload[:2] == b"\xff\xfe":
            text = payload[2:].decode("utf-16-le", errors="replace")
        else:
            even = payload[0::2].count(0)
            odd = payload[1::2].count(0)
            if len(payload) % 2:
                payload = payload[:-1]
            text = payload.decode("utf-16-le" if odd > even else "utf-16-be", errors="replace")
    elif header == b"ASCII\x00\x00\x00":
        text = payload.decode("utf-8", errors="ignore")
    elif header == b"JIS\x00\x00\x00\x00\x00":
        text = payload.decode("shift_jis", errors="ignore")
    elif header == b"\x00" * 8:
        text = payload.decode("utf-8", errors="ignore")
    else:
        text = data.decode("utf-8", errors="ignore")
    return text.rstrip("\x00")


def _exif_comment_from_info(exif_data: Any) -> str | None:
    import piexif

    try:
        exif = piexif.load(exif_data)
    except Exception:  # OSError for junk (piexif then tries to open it as a file), ValueError, struct.error
        return None
    comment = (exif or {}).get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
    if not comment:
        return None
    return decode_user_comment(comment)


# ------------------------------------------------------------------------------------------------ reading


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict[str, Any]]:
    """``(infotext or None, other info items)`` of an opened image, like A1111's ``read_info_from_image``.

    PNG: the ``parameters`` text chunk. JPEG/WEBP: EXIF ``UserComment`` (wins over a ``parameters`` item). GIF: the
    ``comment`` (removed from the items). NovelAI PNGs (``Software: NovelAI``) are turned into an A1111-style
    infotext. EXIF and other binary/format keys (:data:`IGNORED_INFO_KEYS`) are removed from the returned items,
    other ``bytes`` values are decoded as UTF-8.
    """
    items = dict(image.info or {})
    geninfo = items.pop("parameters", None)

    if "exif" in items:
        comment = _exif_comment_from_info(items["exif"])
        if comment:
            geninfo = comment
    elif "comment" in items:  # GIF
        comment = items.pop("comment")
        geninfo = comment.decode("utf8", errors="ignore") if isinstance(comment, bytes) else comment

    for key in IGNORED_INFO_KEYS:
        items.pop(key, None)

    if items.get("Software") == "NovelAI":
        try:
            from modules.core import samplers

            json_info = json.loads(items["Comment"])
            found = samplers.find_sampler(json_info.get("sampler"))
            sampler = found.name if found else "Euler a"
            geninfo = (
                f"{items['Description']}\n"
                f"Negative prompt: {json_info['uc']}\n"
                f"Steps: {json_info['steps']}, Sampler: {sampler}, CFG scale: {json_info['scale']}, "
                f"Seed: {json_info['seed']}, Size: {image.width}x{image.height}, Clip skip: 2, ENSD: 31337"
            )
        except Exception:
            pass

    if isinstance(geninfo, bytes):
        geninfo = geninfo.decode("utf8", errors="ignore")
    # Keep the items JSON-friendly (they go to the PNG Info tab and /sdapi/v1/png-info).
    items = {k: (v.decode("utf8", errors="ignore") if isinstance(v, bytes) else v) for k, v in items.items()}
    return geninfo, items


# ------------------------------------------------------------------------------------------------ encoding


def _text_items(image: Image.Image) -> dict[str, str]:
    return {k: v for k, v in (image.info or {}).items() if isinstance(k, str) and isinstance(v, str)}


def _pnginfo(items: Mapping[str, str]) -> PngImagePlugin.PngInfo | None:
    if not items:
        return None
    info = PngImagePlugin.PngInfo()
    for key, value in items.items():
        info.add_text(key, str(value))  # falls back to iTXt for text that is not Latin-1
    return info


def _for_format(image: Image.Image, fmt: str) -> Image.Image:
    """Convert modes the target format cannot store (RGBA/P → RGB for JPEG, I;16 scaled to 8 bit, ...)."""
    if fmt == "JPEG":
        if image.mode == "I;16":
            return image.point(lambda p: p * 0.0038910505836576).convert("L")
        if image.mode not in ("RGB", "L", "CMYK"):
            return image.convert("RGB")
    elif fmt == "WEBP":
        if image.mode == "I;16":
            return image.point(lambda p: p * 0.0038910505836576).convert("RGB")
        if image.mode not in ("RGB", "RGBA"):
            return image.convert("RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
    return image


def _encode(
    image: Image.Image,
    fh,
    fmt: str,
    infotext: str | None,
    *,
    quality: int,
    webp_lossless: bool,
    pnginfo_key: str = "parameters",
) -> None:
    if fmt == "PNG":
        items = _text_items(image)
        if infotext is not None:
            items[pnginfo_key] = infotext
        image.save(fh, format="PNG", pnginfo=_pnginfo(items))
    elif fmt in ("JPEG", "WEBP"):
        text = infotext if infotext is not None else image.info.get(pnginfo_key)
        kwargs: dict[str, Any] = {"quality": quality}
        if fmt == "WEBP":
            kwargs["lossless"] = webp_lossless
        if text is not None:
            kwargs["exif"] = exif_user_comment(text)
        _for_format(image, fmt).save(fh, format=fmt, **kwargs)
    elif fmt == "GIF":
        text = infotext if infotext is not None else image.info.get(pnginfo_key)
        kwargs = {"comment": text.encode("utf-8")} if text else {}
        image.save(fh, format="GIF", **kwargs)
    else:  # pragma: no cover - guarded by _format_for
        image.save(fh, format=fmt, quality=quality)


def _format_for(extension: str) -> tuple[str, str]:
    ext = extension.lower().lstrip(".")
    fmt = _FORMATS.get(ext)
    if fmt is None:
        raise ValueError(f"Unsupported image extension {extension!r}; use one of: {', '.join(_FORMATS)}")
    return ext, fmt


# ------------------------------------------------------------------------------------------------ saving


@dataclass
class ImageSaveParams:
    image: Any  # PIL image about to be / that was saved
    p: Any  # the processing object, or None
    filename: str  # the full path it is saved to
    pnginfo: dict[str, Any]  # text chunks; "parameters" holds the infotext


def save_image(
    image: Image.Image,
    directory: Path | str,
    *,
    seed: int | str | None = None,
    infotext: str | None = None,
    extension: str = "png",
    basename_pattern: str = "[seed]",
    tags: Mapping[str, Any] | None = None,
    jpeg_quality: int = 80,
    webp_lossless: bool = False,
    save_txt: bool = False,
    pnginfo_key: str = "parameters",
    basename_prefix: str = "",
    callbacks: Any = None,
    p: Any = None,
) -> Path:
    """Save ``image`` as ``directory/NNNNN-<pattern>.<ext>`` atomically; returns the final path.

    * ``NNNNN`` is the next free 5-digit number (1 + the largest leading number of the files already there).
    * ``basename_pattern``: A1111's file-name pattern; ``[seed]`` and the keys of ``tags`` (case-insensitive,
      e.g. ``{"steps": 20, "sampler": "Euler a"}``) are replaced; unknown ``[tags]`` stay as written; an empty
      result gives ``NNNNN.<ext>``.
    * ``infotext``: stored in the PNG ``parameters`` chunk (other text items of ``image.info`` are kept), as EXIF
      ``UserComment`` for JPEG/WEBP, as the GIF comment. ``save_txt`` also writes ``NNNNN-....txt`` with it.
    * ``basename_prefix``: A1111's optional ``basename``, numbered separately with 4 digits (``grid`` →
      ``grid-NNNN-<pattern>``; A1111 names grids ``grid-NNNN.png``: pass ``basename_pattern=""`` for that).
    * ``callbacks``: a ``script_callbacks.CallbackRegistry``; its ``before_image_saved`` callbacks get an
      ``ImageSaveParams(image, p, filename, pnginfo)`` first and may replace the image, the infotext
      (``pnginfo["parameters"]``) or the file name (then written exactly there); ``image_saved`` ones get it
      after the file is in place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ext, fmt = _format_for(extension)

    all_tags = {"seed": seed}
    all_tags.update(tags or {})
    decoration = _apply_pattern(basename_pattern or "", all_tags)
    file_decoration = f"-{decoration}" if decoration else ""

    exact: Path | None = None
    params = None
    if callbacks is not None and (callbacks.has("before_image_saved") or callbacks.has("image_saved")):
        number = next_sequence_number(directory, basename_prefix)
        counter = f"{basename_prefix}-{number:04}" if basename_prefix else f"{number:05}"
        planned = str(directory / f"{counter}{file_decoration}.{ext}")
        params = ImageSaveParams(image, p, planned, {pnginfo_key: infotext} if infotext is not None else {})
        callbacks.run("before_image_saved", params)
        image = params.image
        infotext = params.pnginfo.get(pnginfo_key, infotext)
        if params.filename != planned:
            exact = Path(params.filename)
            directory = exact.parent
            directory.mkdir(parents=True, exist_ok=True)

    tmp = _write_temp(
        directory,
        f".{ext}",
        lambda fh: _encode(image, fh, fmt, infotext, quality=jpeg_quality, webp_lossless=webp_lossless,
                           pnginfo_key=pnginfo_key),
    )
    txt_tmp = None
    try:
        if save_txt and infotext is not None:
            txt_tmp = _write_temp(directory, ".txt", lambda fh: fh.write(f"{infotext}\n".encode("utf-8")))
        with _save_lock:
            number = next_sequence_number(directory, basename_prefix)
            for _ in range(100000):
                if exact is not None:
                    final, txt_final = exact, exact.with_suffix(".txt")
                    break
                counter = f"{basename_prefix}-{number:04}" if basename_prefix else f"{number:05}"
                stem = f"{counter}{file_decoration}"
                final = directory / f"{stem}.{ext}"
                txt_final = directory / f"{stem}.txt"
                if not final.exists() and not (txt_tmp is not None and txt_final.exists()):
                    break
                number += 1
            os.replace(tmp, final)
            if txt_tmp is not None:
                os.replace(txt_tmp, txt_final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if txt_tmp is not None:
            txt_tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    if params is not None:
        params.filename = str(final)
        callbacks.run("image_saved", params)
    return final


# ------------------------------------------------------------------------------------------------ grid


def image_grid(images: Sequence[Image.Image], rows: int | None = None, *, background: str = "#ffffff") -> Image.Image:
    """A1111's ``image_grid``: ``rows`` defaults to ``round(sqrt(n))``, ``cols = ceil(n / rows)``; cells are the
    largest image's size, smaller images are centred; the background is white."""
    imgs = list(images)
    if not imgs:
        raise ValueError("image_grid needs at least one image")
    if rows is None:
        rows = round(math.sqrt(len(imgs)))
    rows = max(1, min(int(rows), len(imgs)))
    cols = math.ceil(len(imgs) / rows)

    w, h = map(max, zip(*(img.size for img in imgs)))
    grid = Image.new("RGB", size=(cols * w, rows * h), color=ImageColor.getcolor(background, "RGB"))
    for i, img in enumerate(imgs):
        img_w, img_h = img.size
        w_offset = 0 if img_w == w else (w - img_w) // 2
        h_offset = 0 if img_h == h else (h - img_h) // 2
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGBA")
            grid.paste(img, box=(i % cols * w + w_offset, i // cols * h + h_offset), mask=img)
        else:
            grid.paste(img, box=(i % cols * w + w_offset, i // cols * h + h_offset))
    return grid


# ------------------------------------------------------------------------------------------------ base64


def encode_image_base64(
    image: Image.Image,
    fmt: str = "png",
    infotext: str | None = None,
    *,
    jpeg_quality: int = 80,
    webp_lossless: bool = False,
) -> str:
    """Base64 (no ``data:`` prefix) of ``image`` encoded as PNG/JPEG/WEBP, like A1111's API.

    PNG keeps the text items of ``image.info`` (so a ``parameters`` chunk survives); JPEG/WEBP carry the infotext
    (``infotext`` or ``image.info["parameters"]``) as EXIF ``UserComment``. ``infotext`` overrides ``parameters``.
    """
    ext, pil_fmt = _format_for(fmt)
    if pil_fmt == "GIF":
        raise ValueError("Unsupported image format 'gif' for base64 encoding; use png, jpeg or webp")
    buf = io.BytesIO()
    _encode(image, buf, pil_fmt, infotext, quality=jpeg_quality, webp_lossless=webp_lossless)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_re_data_url = re.compile(r"^data:image/[\w.+-]+(?:;[\w=.+-]+)*;base64,", re.IGNORECASE)


def _fix_image(image: Image.Image) -> Image.Image:
    """A1111's ``images.fix_image``: apply the EXIF orientation; palette images with transparency → RGBA."""
    try:
        if image.getexif().get(0x0112, 1) not in (None, 1):  # EXIF Orientation
            info = dict(image.info)
            transposed = ImageOps.exif_transpose(image)
            if transposed is not None:
                transposed.info.update({k: v for k, v in info.items() if k not in transposed.info})
                image = transposed
        if image.mode in ("RGB", "P") and isinstance(image.info.get("transparency"), bytes):
            info = dict(image.info)
            image = image.convert("RGBA")
            image.info.update(info)
    except Exception:
        pass
    return image


class _ImageTooLarge(ValueError):
    pass


def decode_base64_image(data: str | bytes, max_pixels: int | None = None) -> Image.Image:
    """Decode a base64 image, with or without a ``data:image/...;base64,`` prefix; the pixels are fully loaded.

    Raises ``ValueError("Invalid encoded image: <reason>")`` for an empty string, bad base64, bytes that are not an
    image, truncated images and decompression bombs (the API turns it into a 422).
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("Invalid encoded image: not base64 text") from None
    if not isinstance(data, str):
        raise ValueError(f"Invalid encoded image: expected a base64 string, got {type(data).__name__}")
    text = data.strip()
    m = _re_data_url.match(text)
    if m:
        text = text[m.end():]
    elif text.startswith("data:"):
        raise ValueError("Invalid encoded image: data URL is not a base64 image")
    text = "".join(text.split())
    if not text:
        raise ValueError("Invalid encoded image: empty")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"Invalid encoded image: bad base64 ({e})") from None
    if not raw:
        raise ValueError("Invalid encoded image: empty")
    try:
        image = Image.open(io.BytesIO(raw))
        # The header tells the size: refuse before the pixels cost memory (a 480 kB PNG can be 13000 x 13000).
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise _ImageTooLarge(f"Invalid encoded image: {image.width}x{image.height} = {image.width * image.height} "
                                 f"pixels; the limit is {max_pixels} (--max-image-pixels)")
        image.load()
    except _ImageTooLarge:
        raise
    except Image.DecompressionBombError as e:
        raise ValueError(f"Invalid encoded image: too large ({e})") from None
    except Exception as e:  # UnidentifiedImageError, OSError("image file is truncated"), SyntaxError, ...
        reason = str(e) or type(e).__name__
        if "cannot identify image file" in reason:
            reason = "not a recognised image format"
        raise ValueError(f"Invalid encoded image: {reason}") from None
    return _fix_image(image)
