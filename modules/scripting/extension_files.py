"""Which files of the extensions ``/file=`` may hand out (A1111 serves its extensions' folders there: tag lists,
wildcards, icons that their page scripts fetch). Only an active extension's data and web files and
``<program>/tmp`` (where A1111 extensions write files for the page); never code that runs on the server, nor
hidden files. The same path checks as the output images (:mod:`modules.engine.file_access`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modules.engine.file_access import IMAGE_EXTENSIONS, FileRefused, _real, check_request_path, is_within

EXTENSION_FILE_SUFFIXES = frozenset({".csv", ".txt", ".json", ".yaml", ".yml", ".md", ".html", ".css", ".js", ".mjs",
                                     ".svg", ".woff", ".woff2", ".ttf", *IMAGE_EXTENSIONS})


def extension_file_roots(host: Any) -> list[str]:
    roots = [_real(Path(host.engine.paths.repo_root) / "tmp")]
    roots += [_real(ext.path) for ext in host.extensions.active()]
    return roots


def find_extension_file(host: Any, raw: str) -> Path:
    """A data or web file of an active extension (a relative path is taken from the program folder, A1111's
    working directory), or FileRefused."""
    check_request_path(raw)
    requested = Path(raw)
    if not requested.is_absolute():
        requested = Path(host.engine.paths.repo_root) / requested
    real = _real(requested)
    root = next((r for r in extension_file_roots(host) if is_within(real, r)), None)
    if root is None:
        raise FileRefused(403, "not in an extension's folder")
    if any(part.startswith(".") for part in Path(os.path.relpath(real, root)).parts):
        raise FileRefused(403, "a hidden file")
    if Path(real).suffix.lower() not in EXTENSION_FILE_SUFFIXES or requested.suffix.lower() not in EXTENSION_FILE_SUFFIXES:
        raise FileRefused(404, "not a data file")
    if not os.path.isfile(real):
        raise FileRefused(404, "no such file")
    return Path(real)
