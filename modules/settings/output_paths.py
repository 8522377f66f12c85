"""Where generated images go and what they are called: A1111's output-folder and file-name settings.

Pure functions of the options and the values of one image. Folder settings (``outdir_*``) that are relative
are taken from the data folder, as A1111 takes them from its working directory.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from modules.core.image_files import _apply_pattern
from modules.core.request import RequestError

if TYPE_CHECKING:
    from modules.settings.options import Options
    from modules.settings.paths import Paths

PROMPT_TAG_CHARS = 128


def save_location(opts: Options, paths: Paths, *, is_img2img: bool, grid: bool,
                  tags: Mapping[str, Any]) -> tuple[Path, str]:
    """(folder, file-name pattern) for one image, from the options and the data folders."""
    base = base_directory(opts, paths.data_dir, paths.outputs_dir, is_img2img=is_img2img, grid=grid)
    pattern = file_pattern(opts, grid=grid)
    for key in PATTERN_SETTINGS:
        check_output_setting(key, opts.get(key), paths)
    return confined(paths, image_directory(opts, base, tags, grid=grid)), pattern


def base_directory(opts: Any, data_dir: Path, outputs_dir: Path, *, is_img2img: bool, grid: bool) -> Path:
    """``outdir_samples`` / ``outdir_grids`` when set, else the tab's own folder, else ``outputs/<tab>-images``."""
    tab = "img2img" if is_img2img else "txt2img"
    if grid:
        chosen = opts.get("outdir_grids") or opts.get(f"outdir_{tab}_grids")
    else:
        chosen = opts.get("outdir_samples") or opts.get(f"outdir_{tab}_samples")
    if not chosen:
        return Path(outputs_dir) / f"{tab}-{'grids' if grid else 'images'}"
    path = Path(chosen).expanduser()
    return path if path.is_absolute() else Path(data_dir) / path


def image_directory(opts: Any, base: Path, tags: Mapping[str, Any], *, grid: bool) -> Path:
    """The base folder, plus the ``directories_filename_pattern`` sub-folder when saving to sub-folders."""
    if not opts.get("grid_save_to_dirs" if grid else "save_to_dirs"):
        return base
    sub = _apply_pattern(opts.get("directories_filename_pattern") or "[date]", tags).strip(" .")
    return base / sub if sub else base


def file_pattern(opts: Any, *, grid: bool) -> str:
    """A1111: grids are ``grid-NNNN``; images use ``samples_filename_pattern``, else ``[seed]`` (in sub-folders)
    or ``[seed]-[prompt_spaces]`` (all in one folder)."""
    if grid:
        if not opts.get("grid_extended_filename"):
            return ""
        return opts.get("samples_filename_pattern") or "[seed]-[prompt_spaces]"
    return opts.get("samples_filename_pattern") or ("[seed]" if opts.get("save_to_dirs") else "[seed]-[prompt_spaces]")


def filename_tags(*, seed: int, prompt: str, negative_prompt: str, steps: int, cfg_scale: float, width: int,
                  height: int, sampler: str, scheduler: str, model_name: str | None, model_hash: str | None,
                  styles: list[str], clip_skip: int, denoising: float | None, batch_number: int,
                  generation_number: int, job_timestamp: str, max_prompt_words: int = 8,
                  now: _dt.datetime | None = None) -> dict[str, Any]:
    """The ``[tag]`` values A1111's file-name patterns know (the common ones)."""
    now = now or _dt.datetime.now()
    short = prompt[:PROMPT_TAG_CHARS]
    words = [w for w in prompt.replace(",", " ").split() if w][:max(1, int(max_prompt_words))]
    return {
        "seed": seed, "steps": steps, "cfg": cfg_scale, "width": width, "height": height, "sampler": sampler,
        "scheduler": scheduler, "model_name": model_name, "model_hash": model_hash, "prompt": short.replace(" ", "_"),
        "prompt_spaces": short, "prompt_words": " ".join(words) or None,
        "negative_prompt": negative_prompt[:PROMPT_TAG_CHARS] or None, "styles": ", ".join(styles) or None,
        "clip_skip": clip_skip, "denoising": denoising, "batch_number": batch_number,
        "generation_number": generation_number, "job_timestamp": job_timestamp, "date": now.strftime("%Y-%m-%d"),
        "datetime": now.strftime("%Y%m%d%H%M%S"),
    }


# ---- confinement: images are written only inside the data folder (and --allowed-output-path folders) ----

OUTDIR_SETTINGS = ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples", "outdir_extras_samples",
                   "outdir_grids", "outdir_txt2img_grids", "outdir_img2img_grids", "outdir_save", "outdir_init_images")
PATTERN_SETTINGS = ("samples_filename_pattern", "directories_filename_pattern")
# A pattern longer than a file name can be makes every save fail.
MAX_PATTERN_LENGTH = 200


class OutputPathRefused(RequestError):
    """``setting`` would write outside the allowed folders, or cannot make a file name (a 422 naming it)."""


def allowed_roots(paths: Paths) -> list[Path]:
    """The folders images may be written in: the data folder, the outputs folder, ``--allowed-output-path``."""
    roots = [Path(paths.data_dir), Path(paths.outputs_dir), *getattr(paths, "allowed_output_dirs", ())]
    return [Path(os.path.realpath(r)) for r in roots]


def _inside(path: Path, roots: list[Path]) -> bool:
    real = Path(os.path.realpath(path))  # symlinks leading out count as out
    return any(real == root or root in real.parents for root in roots)


def check_output_setting(key: str, value: Any, paths: Paths) -> None:
    """OutputPathRefused when folder setting ``key`` names a folder outside :func:`allowed_roots`, or pattern
    setting ``key`` is absolute, climbs out with ``..`` or is too long to make file names. Other keys pass."""
    if not isinstance(value, str) or not value:
        return
    if "\x00" in value:
        raise OutputPathRefused(key, "contains a NUL character")
    if key in OUTDIR_SETTINGS:
        target = paths.resolve(os.path.expanduser(value))
        if not _inside(target, allowed_roots(paths)):
            raise OutputPathRefused(key, f"{value!r} is outside the data folder {paths.data_dir}; add "
                                         f"--allowed-output-path to write elsewhere")
    elif key in PATTERN_SETTINGS:
        if len(value) > MAX_PATTERN_LENGTH:
            raise OutputPathRefused(key, f"is {len(value)} characters long; the limit is {MAX_PATTERN_LENGTH}")
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", value):
            raise OutputPathRefused(key, f"{value!r} is an absolute path; a pattern names files inside the output folder")
        if any(part.strip() == ".." for part in parts):
            raise OutputPathRefused(key, f"{value!r} climbs out of the output folder with '..'")


def confined(paths: Paths, directory: Path) -> Path:
    """``directory`` if it lies inside the allowed folders, else OutputPathRefused naming the folder settings
    (the settings file may have been edited by hand; the checks at set time make this rare)."""
    if not _inside(directory, allowed_roots(paths)):
        raise OutputPathRefused("outdir_samples", f"{directory} is outside the data folder; add --allowed-output-path "
                                                  f"to write there")
    return directory
