"""Files that sit next to an adapter and describe it (spec §3.8), found from a folder listing.

For ``folder/NAME.ext`` (``stem`` = ``NAME``):

- ``NAME.json``: user metadata (``description``, ``notes``, ``sd version``, ``activation text``,
  ``preferred weight``, ``negative text``) written by the card editor;
- ``NAME.civitai.info``: JSON written by civitai helper extensions;
- ``NAME.txt`` / ``NAME.description.txt``: a plain description;
- previews: the first of ``NAME.{ext}`` / ``NAME.preview.{ext}`` for ext in png, jpg, jpeg, webp, gif.

Everything here works on the names in a folder listing (a ``dict`` name -> ``os.DirEntry``) so that
looking for a sidecar costs no ``stat``; only sidecars that exist are stat-ed, and their contents
are read only by :func:`read_sidecar` (the catalog calls it when the sidecar's size/mtime changed).

The catalog index keeps a sidecar whole only when it is small (:data:`INLINE_MAX`); of a bigger one
it keeps what listing needs (:func:`index_value`) and the rest is read again when asked for.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

PREVIEW_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "gif")
SD_VERSIONS = ("SD1", "SD2", "SDXL", "Unknown")

# Sidecar suffixes with their role, in rank order; the two text files in A1111's order.
_SUFFIXES = ((".json", "json"), (".civitai.info", "civitai"), (".txt", "text"), (".description.txt", "text"))
_PREVIEW_RANK = {ext: i for i, ext in enumerate(PREVIEW_EXTENSIONS)}

# Sidecars up to this many bytes are kept whole in the catalog index; civitai info files are
# often 10-100 KB each, and thousands of them would make every start parse a huge index.
INLINE_MAX = 4096
# Of a bigger JSON sidecar the index keeps top-level scalars, strings up to this many characters...
LIGHT_STR_MAX = 256
# ...and the card editor's fields that listing uses, up to INLINE_MAX characters each.
LISTING_KEYS = frozenset({"description", "sd version", "activation text", "preferred weight", "negative text"})


def folder_sidecars(listing: Mapping[str, os.DirEntry]) -> dict[str, list[tuple[int, str, str]]]:
    """Every possible sidecar in one folder listing, by the stem it belongs to.

    Value: ``(rank, role, name)`` tuples, role ``json``/``civitai``/``text``/``preview``; lower rank
    first. One pass over the listing, so finding the sidecars of each adapter is a dict lookup
    (and no stat for names that are not there). A name can belong to two stems
    (``a.description.txt`` is the description of ``a`` and the ``.txt`` of ``a.description``).
    """
    out: dict[str, list[tuple[int, str, str]]] = {}
    for name in listing:
        dot = name.rfind(".")
        if dot <= 0:
            continue
        for rank, (suffix, role) in enumerate(_SUFFIXES):
            if name.endswith(suffix) and len(name) > len(suffix):
                out.setdefault(name[: -len(suffix)], []).append((rank, role, name))
        ext = name[dot + 1:]
        if ext in _PREVIEW_RANK:
            stem = name[:dot]
            rank = 100 + 2 * _PREVIEW_RANK[ext]
            out.setdefault(stem, []).append((rank, "preview", name))
            if stem.endswith(".preview") and len(stem) > 8:
                out.setdefault(stem[:-8], []).append((rank + 1, "preview", name))
    for found in out.values():
        if len(found) > 1:
            found.sort()
    return out


def find_preview(found: list[tuple[int, str, str]], listing: Mapping[str, os.DirEntry], exclude: str) -> str | None:
    """Name of the preview image among ``found`` (from :func:`folder_sidecars`), in A1111's order.

    For each of png, jpg, jpeg, webp, gif: ``NAME.ext`` then ``NAME.preview.ext``. ``exclude`` is the
    adapter's own file name: an embedding stored as ``NAME.png`` is not its own preview.
    """
    for _, role, name in found:
        if role == "preview" and name != exclude and _is_file(listing[name]):
            return name
    return None


def read_sidecar(path: str) -> tuple[Any, str | None, bool]:
    """Content of one sidecar as ``(value, problem, transient)``.

    JSON sidecars give the parsed object (None when it is not valid JSON); text ones give the text.
    ``problem`` names the file and the reason when it could not be read or parsed; ``transient`` is
    True when the read itself failed (permissions, I/O), so the result must not be remembered.
    """
    is_json = path.endswith(".json") or path.endswith(".civitai.info")
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = raw.decode("utf-8-sig")
    except OSError as e:
        return None, f"{path}: cannot read sidecar: {e.strerror or e}", True
    except UnicodeDecodeError as e:
        return None, f"{path}: sidecar is not UTF-8 text: {e}", False
    if not is_json:
        return text, None, False
    try:
        return json.loads(text), None, False
    except json.JSONDecodeError as e:
        return None, f"{path}: not valid JSON: {e}", False


def role_of(path: str) -> str:
    """``json`` (user metadata), ``civitai`` or ``text``, from the sidecar's name."""
    if path.endswith(".civitai.info"):
        return "civitai"
    return "json" if path.endswith(".json") else "text"


def index_value(path: str, size: int, value: Any, problem: str | None) -> tuple[Any, bool, str | None]:
    """What the catalog index keeps of a sidecar read as ``(value, problem)``: ``(value, partial, problem)``.

    A sidecar of at most :data:`INLINE_MAX` bytes (or one that failed to read) is kept whole
    (``partial`` False). Of a bigger one: a JSON object keeps its small scalars and, for user
    metadata, the listing fields (``partial`` True unless nothing was left out); JSON that is not
    an object keeps only the problem that makes it unusable; a text keeps nothing (``partial``).
    """
    if problem is not None or size <= INLINE_MAX:
        return value, False, problem
    role = role_of(path)
    if role == "text":
        return None, True, None
    if not isinstance(value, dict):
        check = user_metadata_from if role == "json" else civitai_info_from
        return None, False, check(value, path, None)[1]
    light = {}
    for key, item in value.items():
        if len(key) > LIGHT_STR_MAX:
            continue
        if item is None or isinstance(item, (bool, int, float)):
            light[key] = item
        elif isinstance(item, str):
            limit = INLINE_MAX if role == "json" and key in LISTING_KEYS else LIGHT_STR_MAX
            if len(item) <= limit:
                light[key] = item
    return light, len(light) != len(value), None


def user_metadata_from(value: Any, path: str, problem: str | None) -> tuple[dict, str | None]:
    """``NAME.json`` content as the user-metadata dict, ``{}`` plus a problem when it is not an object."""
    if problem:
        return {}, problem
    if value is None:
        return {}, None
    if not isinstance(value, dict):
        return {}, f"{path}: user metadata must be a JSON object, found {type(value).__name__}"
    return value, None


def civitai_info_from(value: Any, path: str, problem: str | None) -> tuple[dict | None, str | None]:
    if problem:
        return None, problem
    if not isinstance(value, dict):
        return None, f"{path}: civitai info must be a JSON object, found {type(value).__name__}"
    return value, None


def preferred_weight(user_metadata: Mapping) -> float:
    """``preferred weight`` as a float; 0.0 (= use the default multiplier) when absent or not a number."""
    value = user_metadata.get("preferred weight", 0)
    if isinstance(value, bool):
        return 0.0
    try:
        weight = float(value)
    except (TypeError, ValueError):
        return 0.0
    return weight if math.isfinite(weight) else 0.0


def sd_version_override(user_metadata: Mapping) -> str | None:
    """The user's ``sd version`` when it is one A1111 knows (``Unknown`` included), else None."""
    value = user_metadata.get("sd version")
    return value if value in SD_VERSIONS else None


def _is_file(de: os.DirEntry) -> bool:
    # is_file() costs nothing for a plain file (d_type) and skips broken symlinks.
    try:
        return de.is_file()
    except OSError:
        return False
