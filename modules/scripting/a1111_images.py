"""A1111's ``modules.images`` signatures (``save_image(image, path, basename, seed, prompt, extension, info, ...)``,
``resize_image(mode, im, w, h, upscaler_name)``, ``image_grid(imgs, batch_size, rows)``) over this app's
:mod:`modules.core.image_files`, with the running Engine's settings and callbacks."""
from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from modules.core import image_files, img2img_ops
from modules.scripting import runtime
from modules.settings import output_paths

if TYPE_CHECKING:
    from modules.engine.engine import Engine


def _prompt_tags(engine: "Engine", seed: Any, prompt: Any, p: Any) -> dict[str, Any]:
    now = _dt.datetime.now()
    text = str(prompt or "")
    short = text[:output_paths.PROMPT_TAG_CHARS]
    tags = {"seed": seed, "prompt": short.replace(" ", "_") or None, "prompt_spaces": short or None,
            "date": now.strftime("%Y-%m-%d"), "datetime": now.strftime("%Y%m%d%H%M%S"),
            "job_timestamp": getattr(engine.state, "job_timestamp", None)}
    for key, attr in (("steps", "steps"), ("cfg", "cfg_scale"), ("width", "width"), ("height", "height"),
                      ("sampler", "sampler_name")):
        value = getattr(p, attr, None) if p is not None else None
        if value is not None:
            tags[key] = value
    info = engine.checkpoint_info
    if info is not None:
        tags.update(model_name=info.model_name, model_hash=info.shorthash)
    return tags


def save_image(image: Image.Image, path: str, basename: str = "", seed: Any = None, prompt: Any = None,
               extension: str = "png", info: Any = None, short_filename: bool = False, no_prompt: bool = False,
               grid: bool = False, pnginfo_section_name: str = "parameters", p: Any = None, existing_info: Any = None,
               forced_filename: str | None = None, suffix: str = "", save_to_dirs: bool | None = None):
    """Save as A1111 does; returns ``(image path, text file path or None)``."""
    engine = runtime.current()
    opts = engine.options
    tags = _prompt_tags(engine, seed, prompt, p)
    directory = Path(path)
    if save_to_dirs is None:
        save_to_dirs = (grid and opts.get("grid_save_to_dirs")) or (
            not grid and opts.get("save_to_dirs") and not no_prompt)
    if save_to_dirs:
        sub = image_files._apply_pattern(opts.get("directories_filename_pattern") or "[date]", tags).strip(" .")
        directory = directory / sub if sub else directory
    if forced_filename:
        pattern, prefix = "", ""
    elif short_filename or seed is None:
        pattern, prefix = "", basename
    else:
        pattern = opts.get("samples_filename_pattern") or ("[seed]" if save_to_dirs or no_prompt else "[seed]-[prompt_spaces]")
        prefix = basename
    text = info if isinstance(info, str) else None
    callbacks = runtime.host(engine).callbacks
    if forced_filename:
        target = directory / f"{forced_filename}.{extension}"
        callbacks = _ExactName(callbacks, str(target))
    saved = image_files.save_image(
        image, directory, seed=seed, infotext=text if opts.get("enable_pnginfo") else None, extension=extension,
        basename_pattern=pattern + (suffix or ""), tags=tags, jpeg_quality=int(opts.get("jpeg_quality") or 80),
        webp_lossless=bool(opts.get("webp_lossless")), save_txt=bool(opts.get("save_txt")) and text is not None,
        pnginfo_key=pnginfo_section_name, basename_prefix=prefix, callbacks=callbacks, p=p)
    txt = saved.with_suffix(".txt")
    return str(saved), (str(txt) if txt.exists() and opts.get("save_txt") else None)


class _ExactName:
    """Callbacks wrapper that first renames the planned file to A1111's ``forced_filename``."""

    def __init__(self, inner: Any, filename: str) -> None:
        self.inner = inner
        self.filename = filename

    def has(self, kind: str) -> bool:
        return kind in ("before_image_saved", "image_saved") or self.inner.has(kind)

    def run(self, kind: str, *args: Any) -> list:
        if kind == "before_image_saved" and args:
            args[0].filename = self.filename
        out = self.inner.run(kind, *args)
        if kind == "before_image_saved" and args:
            self.filename = args[0].filename
        return out


def resize_image(resize_mode: int, im: Image.Image, width: int, height: int, upscaler_name: str | None = None,
                 force_RGBA: bool = False) -> Image.Image:  # noqa: N803 - A1111's name
    engine = runtime.current(required=False)
    upscale = None
    if engine is not None:
        name = upscaler_name or engine.options.get("upscaler_for_img2img", None) or None
        upscale = engine.upscalers.for_resize(name)
    if not force_RGBA and im.mode == "RGBA":
        im = im.convert("RGB")
    return img2img_ops.resize_image(resize_mode, im, width, height, upscale=upscale)


def image_grid(imgs: list, batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """A1111's rows rule: ``n_rows`` setting (>0 fixed, 0 = batch size, -1 = about square)."""
    if rows is None:
        engine = runtime.current(required=False)
        n_rows = int(engine.options.get("n_rows")) if engine is not None else -1
        if n_rows > 0:
            rows = n_rows
        elif n_rows == 0:
            rows = batch_size
        else:
            rows = max(1, math.floor(math.sqrt(len(imgs))))
            while len(imgs) % rows != 0 and engine is not None and engine.options.get("grid_prevent_empty_spots"):
                rows -= 1
    return image_files.image_grid(imgs, rows)


def flatten(img: Image.Image, bgcolor: Any) -> Image.Image:
    return img2img_ops.flatten(img, bgcolor)
