"""File hashes as A1111 computes them (spec §13.2), with a persistent cache.

- ``sha256_file``: whole-file sha256 (checkpoints, VAEs, embeddings, hypernetworks).
- ``old_model_hash``: the pre-Oct-2022 "Model hash" (64 KiB at offset 1 MiB, 8 hex).
- ``addnet_hash_safetensors``: sha256 of a safetensors file's tensor bytes (LoRA hashes).

``HashCache`` keeps computed hashes in a JSON file keyed by (title, absolute path) and
reuses them while the file's size and mtime are unchanged, so each large file is read once.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Callable

from modules.core import fileio

log = logging.getLogger(__name__)

BLOCK = 1024 * 1024
CACHE_VERSION = 1


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(BLOCK), b""):
            h.update(chunk)
    return h.hexdigest()


def old_model_hash(path: str | os.PathLike) -> str:
    """sha256 of the 64 KiB at offset 1 MiB, first 8 hex; ``NOFILE`` when the file is missing."""
    try:
        with open(path, "rb") as f:
            f.seek(0x100000)
            return hashlib.sha256(f.read(0x10000)).hexdigest()[0:8]
    except FileNotFoundError:
        return "NOFILE"


def addnet_hash_safetensors(path: str | os.PathLike) -> str:
    """sha256 of everything after the 8-byte header length and the JSON header."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(8 + fileio.safetensors_header_length(f, path))
        for chunk in iter(lambda: f.read(BLOCK), b""):
            h.update(chunk)
    return h.hexdigest()


class HashCache:
    """Persistent store of file hashes, keyed by (title, absolute path).

    ``title`` is a kind-qualified name such as ``checkpoint/sub/model.safetensors`` or
    ``lora/foo``. An entry holds the file's size and mtime_ns when it was hashed; it is
    used only while both still match. The cache file is written atomically after each new
    hash. A corrupt cache file is ignored (with a warning) and replaced on the next save.

    ``enabled=False`` (``--no-hashing``) makes every lookup return None without touching
    any file. ``path=None`` keeps the cache in memory only.
    """

    def __init__(self, path: str | os.PathLike | None, enabled: bool = True):
        self.path = Path(path) if path is not None else None
        self.enabled = enabled
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._data: dict[str, dict[str, dict]] = self._load() if enabled else {}

    def _load(self) -> dict:
        if self.path is None:
            return {}
        try:
            raw = fileio.read_json(self.path, None)
        except (ValueError, OSError) as e:
            log.warning("hash cache %s is unreadable (%s); starting a new one", self.path, e)
            return {}
        if raw is None:
            return {}
        if (
            not isinstance(raw, dict)
            or raw.get("version") != CACHE_VERSION
            or not isinstance(raw.get("hashes"), dict)
            or not all(isinstance(v, dict) for v in raw["hashes"].values())
        ):
            log.warning("hash cache %s has an unexpected layout; starting a new one", self.path)
            return {}
        return raw["hashes"]

    def _save_locked(self) -> None:
        if self.path is None:
            return
        try:
            fileio.atomic_write_json(self.path, {"version": CACHE_VERSION, "hashes": self._data}, indent=None)
        except OSError as e:
            log.warning("could not write hash cache %s: %s", self.path, e)

    @staticmethod
    def _stat(path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _valid_entry(self, title: str, apath: str, stat: tuple[int, int]) -> dict | None:
        entry = self._data.get(title, {}).get(apath)
        if isinstance(entry, dict) and entry.get("size") == stat[0] and entry.get("mtime_ns") == stat[1]:
            return entry
        return None

    def cached(self, path: str | os.PathLike, title: str, field: str = "sha256") -> str | None:
        """The stored hash if the file is unchanged since it was computed; never reads the file."""
        if not self.enabled:
            return None
        apath = os.path.abspath(path)
        stat = self._stat(apath)
        if stat is None:
            return None
        with self._lock:
            entry = self._valid_entry(title, apath, stat)
            return entry.get(field) if entry else None

    def get_sha256(self, path: str | os.PathLike, title: str) -> str | None:
        """Whole-file sha256, computed at most once while the file is unchanged. None if missing or disabled."""
        return self._get(path, title, "sha256", sha256_file)

    def get_addnet(self, path: str | os.PathLike, title: str) -> str | None:
        """Addnet hash of a .safetensors file (ValueError if it is not one). None if missing or disabled."""
        return self._get(path, title, "addnet", addnet_hash_safetensors)

    def _get(self, path, title: str, field: str, compute: Callable[[str], str]) -> str | None:
        if not self.enabled:
            return None
        apath = os.path.abspath(path)
        with self._lock:
            key_lock = self._key_locks.setdefault((title, apath), threading.Lock())
        # One computation per file at a time; other threads asking for it wait and reuse it.
        with key_lock:
            stat = self._stat(apath)
            if stat is None:
                return None
            with self._lock:
                entry = self._valid_entry(title, apath, stat)
                if entry and entry.get(field):
                    return entry[field]
            value = compute(apath)
            if self._stat(apath) != stat:
                log.warning("%s changed while it was being hashed; not caching its hash", apath)
                return value
            with self._lock:
                entry = self._valid_entry(title, apath, stat) or {"size": stat[0], "mtime_ns": stat[1]}
                entry[field] = value
                self._data.setdefault(title, {})[apath] = entry
                self._save_locked()
            return value
