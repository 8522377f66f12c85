"""Checkpoint listing, naming and lookup, compatible with A1111 (spec §13.1, §13.2).

``CheckpointRegistry.refresh()`` walks the checkpoint folders without reading any file
contents: sha256 values come from the hash cache only, the old 8-hex hash and safetensors
metadata are read on first use. ``calculate_hash`` computes the full sha256 (once, through
the ``HashCache``) and renames the checkpoint to ``"name [shorthash]"``.

A diffusers folder (one holding ``model_index.json``) is listed as one checkpoint; its
sha256 is the sha256 of its files' ``"relative/path\\0sha256\\n"`` lines, in sorted order.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Iterator

from modules.core import fileio
from modules.models.hashes import HashCache, old_model_hash
from modules.settings.paths import Paths
from modules.models.vae_list import is_vae_filename

log = logging.getLogger(__name__)

CHECKPOINT_EXTENSIONS = (".ckpt", ".safetensors")
DIFFUSERS_MARKER = "model_index.json"
SHORTHASH_LEN = 10

_re_strip_checksum = re.compile(r"\s*\[[^]]*]\s*$")
_re_old_hash = re.compile(r"(?:^|\[)([0-9a-fA-F]{8})\]?$")


@dataclass(eq=False)
class CheckpointInfo:
    filename: str  # absolute path of the file (or diffusers folder)
    name: str  # path relative to its checkpoint folder, e.g. "sub/model.safetensors"
    name_for_extra: str  # stem, e.g. "model"
    model_name: str  # name without extension, separators -> "_"
    title: str  # "name [shorthash]" once hashed, else name
    short_title: str  # "name_for_extra [shorthash]" once hashed, else name_for_extra
    sha256: str | None = None
    shorthash: str | None = None
    is_diffusers_folder: bool = False
    _hash: str | None = field(default=None, repr=False)
    _metadata: dict | None = field(default=None, repr=False)

    @property
    def is_safetensors(self) -> bool:
        return self.filename.lower().endswith(".safetensors")

    @property
    def hash(self) -> str | None:
        """Old-style 8-hex model hash (read on first use; None for a diffusers folder)."""
        if self._hash is None and not self.is_diffusers_folder:
            self._hash = old_model_hash(self.filename)
        return self._hash

    @property
    def metadata(self) -> dict:
        """Safetensors ``__metadata__`` (without ``modelspec.thumbnail``); {} for other formats."""
        if self._metadata is None:
            meta: dict = {}
            if self.is_safetensors:
                try:
                    meta = fileio.read_safetensors_metadata(self.filename)
                except (OSError, ValueError) as e:
                    log.warning("could not read metadata of %s: %s", self.filename, e)
                meta.pop("modelspec.thumbnail", None)
            self._metadata = meta
        return self._metadata

    @property
    def ids(self) -> list[str]:
        """Every string that names this checkpoint exactly (A1111's ``checkpoint_aliases``)."""
        ids = [self.model_name, self.title, self.name, self.name_for_extra]
        if self._hash is not None:
            ids += [self._hash, f"{self.name} [{self._hash}]"]
        if self.shorthash:
            ids += [self.shorthash, self.sha256, f"{self.name} [{self.shorthash}]",
                    f"{self.name_for_extra} [{self.shorthash}]"]
        return ids

    def set_sha256(self, sha256: str | None) -> None:
        self.sha256 = sha256
        self.shorthash = sha256[:SHORTHASH_LEN] if sha256 else None
        self.title = f"{self.name} [{self.shorthash}]" if self.shorthash else self.name
        self.short_title = f"{self.name_for_extra} [{self.shorthash}]" if self.shorthash else self.name_for_extra


def _relative_name(path: str, folders) -> str:
    for folder in folders:
        folder = os.path.abspath(folder)
        try:
            if os.path.commonpath([path, folder]) == folder:
                return os.path.relpath(path, folder)
        except ValueError:  # different drives
            continue
    return os.path.basename(path)


def _folder_files(folder: str) -> list[tuple[str, str]]:
    """(posix relative path, absolute path) of the regular, non-hidden files of a diffusers folder."""
    out = []
    for path in fileio.walk_files(folder, list_hidden=False):
        rel = os.path.relpath(path, folder).replace(os.sep, "/")
        if not any(part.startswith(".") for part in rel.split("/")):
            out.append((rel, path))
    out.sort()
    return out


class CheckpointRegistry:
    """The list of checkpoints and the name -> checkpoint lookup.

    ``ckpt_arg`` is ``--ckpt``: when it exists it is registered first and is available as
    :attr:`cmd_ckpt` (A1111 makes it the selected checkpoint).
    """

    def __init__(self, paths: Paths, hash_cache: HashCache, ckpt_arg: str | None = None, list_hidden: bool = True):
        self.paths = paths
        self.hash_cache = hash_cache
        self.ckpt_arg = ckpt_arg
        self.list_hidden = list_hidden
        self.cmd_ckpt: CheckpointInfo | None = None
        self._lock = threading.RLock()
        self._by_title: dict[str, CheckpointInfo] = {}
        self._aliases: dict[str, CheckpointInfo] = {}
        self._old_hashes_done = False

    # -- listing ---------------------------------------------------------------------------

    def info_for_path(self, path: str | os.PathLike) -> CheckpointInfo:
        """A CheckpointInfo for any file or diffusers folder, named like a listed one; not registered."""
        path = os.path.abspath(path)
        is_folder = os.path.isdir(path)
        name = _relative_name(path, self.paths.ckpt_dirs)
        base = os.path.basename(path)
        stem = base if is_folder else os.path.splitext(base)[0]
        model_name = name.replace("/", "_").replace("\\", "_")
        if not is_folder:
            model_name = os.path.splitext(model_name)[0]
        info = CheckpointInfo(filename=path, name=name, name_for_extra=stem, model_name=model_name,
                              title=name, short_title=stem, is_diffusers_folder=is_folder)
        info.set_sha256(self._sha256(info, compute=False))
        return info

    def _candidates(self) -> Iterator[str]:
        if self.ckpt_arg and (os.path.isfile(self.ckpt_arg) or
                              os.path.isfile(os.path.join(self.ckpt_arg, DIFFUSERS_MARKER))):
            yield self.ckpt_arg
        for folder in self.paths.ckpt_dirs:
            for path in fileio.walk_files(folder, CHECKPOINT_EXTENSIONS, list_hidden=self.list_hidden,
                                          bundle_marker=DIFFUSERS_MARKER):
                if not is_vae_filename(path):
                    yield path

    def refresh(self) -> list[CheckpointInfo]:
        """Re-list the checkpoint folders (stat only, no file contents read)."""
        by_title: dict[str, CheckpointInfo] = {}
        aliases: dict[str, CheckpointInfo] = {}
        seen: set[str] = set()
        cmd_ckpt = None
        for path in self._candidates():
            apath = os.path.abspath(path)
            if apath in seen:
                continue
            seen.add(apath)
            info = self.info_for_path(apath)
            if cmd_ckpt is None and self.ckpt_arg and apath == os.path.abspath(self.ckpt_arg):
                cmd_ckpt = info
            by_title[info.title] = info
            for alias in info.ids:
                aliases[alias] = info
        with self._lock:
            self._by_title, self._aliases, self.cmd_ckpt = by_title, aliases, cmd_ckpt
            self._old_hashes_done = False
        return list(by_title.values())

    def list(self) -> list[CheckpointInfo]:
        with self._lock:
            return list(self._by_title.values())

    def titles(self) -> list[str]:
        with self._lock:
            return list(self._by_title)

    def __len__(self) -> int:
        return len(self._by_title)

    # -- lookup ----------------------------------------------------------------------------

    def _ensure_old_hashes(self) -> None:
        """Read the old 8-hex hashes (64 KiB per file) so that they resolve as aliases."""
        with self._lock:
            if self._old_hashes_done:
                return
            for info in self._by_title.values():
                if info.hash is not None:
                    self._aliases.setdefault(info.hash, info)
                    self._aliases.setdefault(f"{info.name} [{info.hash}]", info)
            self._old_hashes_done = True

    def get_closest(self, query: str | None) -> CheckpointInfo | None:
        """A1111's ``get_closet_checkpoint_match``: exact alias, else the shortest title
        containing the query, else the same with a trailing ``[...]`` removed."""
        if not query:
            return None
        with self._lock:
            info = self._aliases.get(query)
            if info is None and _re_old_hash.search(query):
                self._ensure_old_hashes()
                info = self._aliases.get(query)
            if info is not None:
                return info
            infos = list(self._by_title.values())
        for needle in (query, _re_strip_checksum.sub("", query)):
            found = sorted((i for i in infos if needle in i.title), key=lambda i: len(i.title))
            if found:
                return found[0]
        return None

    # -- hashing ---------------------------------------------------------------------------

    def _sha256(self, info: CheckpointInfo, compute: bool) -> str | None:
        title = f"checkpoint/{info.name}"
        if not info.is_diffusers_folder:
            return (self.hash_cache.get_sha256 if compute else self.hash_cache.cached)(info.filename, title)
        lines = []
        for rel, path in _folder_files(info.filename):
            h = (self.hash_cache.get_sha256 if compute else self.hash_cache.cached)(path, f"{title}/{rel}")
            if h is None:
                return None
            lines.append(f"{rel}\0{h}\n")
        return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest() if lines else None

    def calculate_hash(self, info: CheckpointInfo) -> str | None:
        """Fill ``sha256``/``shorthash`` (through the hash cache), retitle and re-alias. Returns the shorthash."""
        sha256 = self._sha256(info, compute=True)
        if sha256 is None:
            return None
        with self._lock:
            if sha256 == info.sha256:
                return info.shorthash
            old_title = info.title
            info.set_sha256(sha256)
            if old_title in self._by_title:  # keep its place in the list
                self._by_title = {(info.title if k == old_title else k): v for k, v in self._by_title.items()}
            for alias in info.ids:
                self._aliases[alias] = info
        return info.shorthash
