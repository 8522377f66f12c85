"""Where generated images go and what they are called: A1111's output-folder and file-name settings.

Pure functions of the options and the values of one image. Folder settings (``outdir_*``) that are relative
are taken from the data folder, as A1111 takes them from its working directory.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from modules.core.image_files import _apply_pattern

if TYPE_CHECKING:
    from modules.settings.options import Options
    from modules.settings.paths import Paths

PROMPT_TAG_CHARS = 128


def save_location(opts: Options, paths: Paths, *, is_img2img: bool, grid: bool,
                  tags: Mapping[str, Any]) -> tuple[Path, str]:
    """(folder, file-name pattern) for one image, from the options and the data folders."""
    base = base_directory(opts, paths.data_dir, paths.outputs_dir, is_img2img=is_img2img, grid=grid)
    return image_directory(opts, base, tags, grid=grid), file_pattern(opts, grid=grid)


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
