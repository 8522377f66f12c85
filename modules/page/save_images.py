"""A1111's 💾 Save and 🗃️ Zip under the gallery: copy the selected image (all of them with
``save_selected_only`` off) to ``outdir_save`` with its infotext, log a row in its ``log.csv``, and offer the
files (or one zip of them) for download. Every file is written atomically.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

from modules.core import fileio, image_files, infotext

if TYPE_CHECKING:
    from modules.engine.engine import Engine

LOG_COLUMNS = ["prompt", "seed", "width", "height", "sampler", "cfgs", "steps", "filename", "negative_prompt",
               "sd_model_name", "sd_model_hash"]  # A1111's log.csv header


def save_folder(engine: "Engine") -> Path:
    folder = Path(str(engine.options.get("outdir_save") or "log/images"))
    return folder if folder.is_absolute() else Path(engine.paths.data_dir) / folder


def chosen(count: int, selected: int, selected_only: bool) -> list[int]:
    """Which gallery indices Save takes: the selected one, or all of them."""
    if count <= 0:
        return []
    if selected_only:
        return [min(max(int(selected or 0), 0), count - 1)]
    return list(range(count))


def _log_row(text: str, filename: str) -> list[Any]:
    params = infotext.parse_generation_parameters(text or "")
    width, height = (params.get("Size-1", ""), params.get("Size-2", ""))
    return [params.get("Prompt", ""), params.get("Seed", ""), width, height, params.get("Sampler", ""),
            params.get("CFG scale", ""), params.get("Steps", ""), filename, params.get("Negative prompt", ""),
            params.get("Model", ""), params.get("Model hash", "")]


def _append_log(folder: Path, rows: list[list[Any]]) -> None:
    path = folder / "log.csv"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    out = io.StringIO()
    writer = csv.writer(out)
    if not old:
        writer.writerow(LOG_COLUMNS)
    writer.writerows(rows)
    fileio.atomic_write_text(path, old + out.getvalue())


def save_images(engine: "Engine", images: Sequence[Image.Image], infotexts: Sequence[str], seeds: Sequence[Any],
                *, make_zip: bool) -> tuple[list[Path], str]:
    """Save ``images`` (with their infotexts) to the Save folder; with ``make_zip`` also one zip of them.

    Returns (the files to download: the images, or the zip) and a line for the page."""
    if not images:
        return [], "Nothing to save: generate something first"
    folder = save_folder(engine)
    folder.mkdir(parents=True, exist_ok=True)
    extension = str(engine.options.get("samples_format") or "png")
    saved: list[Path] = []
    rows = []
    for image, text, seed in zip(images, infotexts, seeds):
        path = image_files.save_image(image, folder, seed=seed, infotext=text or None, extension=extension,
                                      basename_pattern=str(engine.options.get("samples_filename_pattern") or "[seed]"),
                                      jpeg_quality=int(engine.options.get("jpeg_quality") or 80),
                                      callbacks=getattr(engine, "callbacks", None))
        saved.append(path)
        rows.append(_log_row(text, path.name))
    _append_log(folder, rows)
    if not make_zip:
        return saved, f"Saved {', '.join(p.name for p in saved)} to {folder}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in saved:
            archive.write(path, path.name)
    archive_path = folder / f"{seeds[0] if seeds else 'images'}_images.zip"
    fileio.atomic_write_bytes(archive_path, buffer.getvalue())
    return [archive_path], f"Saved {len(saved)} image(s) and {archive_path.name} to {folder}"
