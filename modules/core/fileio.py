"""Small file helpers: atomic writes, JSON reads, safetensors headers, ordered folder walks.

An atomic write goes to a temporary file in the same folder, is flushed and
fsync'ed, then moved over the target with ``os.replace``; a reader therefore
sees either the old file or the new one, never half of one. The temporary file
is removed when anything fails.
"""
from __future__ import annotations

import json
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

# A safetensors header longer than this is treated as corrupt (real ones are a few MB at most).
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 4) -> None:
    """Write ``obj`` as UTF-8 JSON (non-ASCII kept as is, like A1111's config.json)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Parsed JSON of ``path``, or ``default`` when the file does not exist.

    A file that exists but is not valid JSON raises ``ValueError`` (``json.JSONDecodeError``
    or ``UnicodeDecodeError``): the caller decides whether that is fatal.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def safetensors_header_length(f: BinaryIO, path: str | os.PathLike = "") -> int:
    """Read the 8-byte little-endian header length at the start of an open safetensors file.

    The tensor data starts at ``8 + length``. Raises ``ValueError`` when the length cannot be right.
    """
    f.seek(0)
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw)
    size = os.fstat(f.fileno()).st_size
    if n < 2 or n > MAX_SAFETENSORS_HEADER or n + 8 > size:
        raise ValueError(f"{path}: bad safetensors header length {n} (file size {size})")
    return n


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a .safetensors file (tensor entries plus ``__metadata__``).

    Reads only the 8-byte length and the header itself. Raises ``ValueError`` for a
    file that is not a safetensors file.
    """
    with open(path, "rb") as f:
        text = f.read(safetensors_header_length(f, path))
    if not text.startswith(b"{"):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: safetensors header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    return header


def read_safetensors_metadata(path: str | os.PathLike) -> dict:
    """``__metadata__`` of a safetensors file, as A1111 reads it (spec §3.7); ``ValueError`` for a bad file."""
    return safetensors_metadata_from_header(read_safetensors_header(path))


def safetensors_metadata_from_header(header: dict) -> dict:
    """``__metadata__`` of a parsed header; string values that start with ``{`` are additionally parsed as JSON
    when they can be (``ss_tag_frequency``, ``ss_dataset_dirs``, ...)."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        return {}
    out = {}
    for key, value in meta.items():
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        out[key] = value
    return out


def fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_natural_split = re.compile(r"(\d+)")


def natural_sort_key(s: str) -> list:
    """Sort key that orders "a2" before "a10" and ignores case (A1111's natural sort)."""
    return [int(part) if part.isdigit() else part.lower() for part in _natural_split.split(s)]


def walk_files(
    root: str | os.PathLike,
    extensions: Iterable[str] | None = None,
    *,
    list_hidden: bool = True,
    bundle_marker: str | None = None,
) -> Iterator[str]:
    """Files under ``root``, recursively, following symlinks, in A1111's order.

    Order: folders by natural sort of their path, files by natural sort within a folder.
    ``extensions`` (like ``".safetensors"``) match case-insensitively. Broken symlinks and
    symlink cycles are skipped; hidden folders too unless ``list_hidden``. A folder holding
    ``bundle_marker`` (e.g. ``model_index.json``) is yielded itself, as one item, and not
    descended into; ``root`` itself is never treated as a bundle.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        return
    exts = {e.lower() for e in extensions} if extensions is not None else None
    visited: set[str] = set()
    items: list[tuple[str, list[str]]] = []  # (folder, entries yielded from it)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        if not list_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        entries = []
        if bundle_marker:
            bundles = [d for d in dirnames if os.path.isfile(os.path.join(dirpath, d, bundle_marker))]
            dirnames[:] = [d for d in dirnames if d not in bundles]
            entries += bundles
        for name in filenames:
            if exts is not None and os.path.splitext(name)[1].lower() not in exts:
                continue
            if not os.path.exists(os.path.join(dirpath, name)):  # broken symlink
                continue
            entries.append(name)
        items.append((dirpath, entries))
    items.sort(key=lambda item: natural_sort_key(item[0]))
    for dirpath, entries in items:
        for name in sorted(entries, key=natural_sort_key):
            yield os.path.join(dirpath, name)
