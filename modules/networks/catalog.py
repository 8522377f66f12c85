"""The adapter "model manager": lists LoRA/LyCORIS, hypernetwork and embedding files (spec §1.1, §2.1, §3.1).

A :class:`NetworkCatalog` walks its folders in A1111's order and gives one :class:`NetworkEntry` per
file, with what the UI and the loaders need: names and aliases, safetensors metadata, the base
model family, sidecars (user metadata, civitai info, description, preview) and lazy hashes.

Speed comes from a persistent index (a JSON file per catalog): for every file it keeps the size
and mtime_ns it had and everything derived from its contents (metadata, family, header problems),
and for every sidecar its size, mtime_ns and parsed content. A start with a warm index therefore
lists folders and stats files but reads no file contents; a file or sidecar is read again only
when its size or mtime changed. Hashes are never computed while scanning (see ``sha256``).

Nothing raises out of :meth:`NetworkCatalog.refresh` for a bad adapter file: the entry is kept
with ``problems`` filled, and the loader reports them when the file is used.
"""
from __future__ import annotations

import json
import logging
import os
import re
import stat as stat_mod
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from modules import fileio
from modules.hashes import HashCache
from modules.networks import sidecars

log = logging.getLogger(__name__)

KINDS = ("lora", "hypernet", "embedding")
INDEX_VERSION = 1

_EXTENSIONS = {
    "lora": frozenset({"safetensors", "pt", "ckpt"}),
    "hypernet": frozenset({"pt"}),
    "embedding": frozenset({"pt", "bin", "safetensors", "png", "webp", "jxl", "avif"}),
}
_EMBEDDING_IMAGES = frozenset({"png", "webp", "jxl", "avif"})
_EMBEDDING_DATA = frozenset({"pt", "bin", "safetensors"})
_SHORTHASH_LEN = {"lora": 12, "embedding": 12, "hypernet": 10}

# Context width of the UNet cross-attention (attn2 to_k/to_v input) and hidden width of a CLIP text encoder.
_XATTN_WIDTH = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
_TE_WIDTH = {768: "SD1", 1024: "SD2", 1280: "SDXL"}
# SD1/SD2 UNets have one transformer block per attention; SDXL's deeper blocks have up to 10.
_DEEP_TRANSFORMER = re.compile(r"transformer_blocks[._][1-9]")
_UNET_WORDS = ("unet", "input_blocks", "output_blocks", "middle_block", "down_blocks", "up_blocks", "mid_block")
_DOWN_SUFFIXES = ("lora_down.weight", "lora_A.weight", ".down.weight", "hada_w1_b", "hada_w2_b")


@dataclass
class NetworkEntry:
    kind: str
    name: str
    alias: str
    path: Path
    root: Path
    relpath: str
    size: int
    mtime: float
    format: str
    family: str
    metadata: dict  # shared with the index: treat as read-only
    preview: Path | None
    user_metadata: dict
    civitai_info: dict | None
    description: str
    problems: list[str] = field(default_factory=list)

    @property
    def hidden(self) -> bool:
        """In a folder (or named) starting with "." : A1111 shows such items only when searched for."""
        return any(part.startswith(".") for part in self.relpath.split("/"))

    @property
    def preferred_weight(self) -> float:
        return sidecars.preferred_weight(self.user_metadata)

    @property
    def activation_text(self) -> str:
        value = self.user_metadata.get("activation text", "")
        return value if isinstance(value, str) else ""


@dataclass
class CatalogChanges:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def parse_metadata(header: dict) -> dict:
    """``__metadata__`` of a parsed safetensors header, as ``fileio.read_safetensors_metadata`` gives it."""
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        return {}
    out = {}
    for key, value in meta.items():
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def guess_family(kind: str, header: dict, metadata: dict) -> str:
    """Base model family from a safetensors header alone (no tensor data): SD1, SD2, SDXL or Unknown."""
    base = metadata.get("ss_base_model_version")
    if isinstance(base, str) and base.startswith("sdxl_"):
        return "SDXL"
    if metadata.get("ss_v2") == "True":
        return "SD2"
    if kind == "embedding":
        family = _embedding_family(header)
    elif kind == "lora":
        family = _lora_family(header)
    else:
        family = None
    if family:
        return family
    return "SD1" if metadata else "Unknown"  # A1111: any metadata means SD1


def _lora_family(header: dict) -> str | None:
    seen: set[str] = set()
    for key, info in header.items():
        if key.startswith("lora_te2_") or "text_encoder_2" in key or "clip_g" in key:
            return "SDXL"
        if "transformer_blocks" in key and _DEEP_TRANSFORMER.search(key) and any(w in key for w in _UNET_WORDS):
            return "SDXL"
        if not key.endswith(_DOWN_SUFFIXES) or not isinstance(info, dict):
            continue
        shape = info.get("shape")
        if not isinstance(shape, list) or len(shape) != 2 or not isinstance(shape[1], int):
            continue
        if "attn2" in key and ("to_k" in key or "to_v" in key):
            family = _XATTN_WIDTH.get(shape[1])
        elif ("lora_te" in key or "text_encoder" in key or "text_model" in key) and (
            "q_proj" in key or "k_proj" in key or "v_proj" in key
        ):
            family = _TE_WIDTH.get(shape[1])
        else:
            continue
        if family == "SDXL":
            return family
        if family:
            seen.add(family)
    # A text encoder of width 768 is also SDXL's first one: SD2 evidence outranks SD1 evidence.
    return "SD2" if "SD2" in seen else "SD1" if "SD1" in seen else None


def _embedding_family(header: dict) -> str | None:
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
    if any("clip_g" in k for k, _ in tensors):
        return "SDXL"
    for _, info in tensors:
        shape = info.get("shape")
        if isinstance(shape, list) and 1 <= len(shape) <= 2 and isinstance(shape[-1], int):
            family = _TE_WIDTH.get(shape[-1])
            if family:
                return family
    return None


class NetworkCatalog:
    """Files of one adapter kind under ``dirs`` (searched in the given order), with a persistent index.

    ``index_path`` None keeps the index in memory only. ``hash_cache`` None (or disabled with
    ``--no-hashing``) makes the hash methods return None, except a LoRA's ``sshs_model_hash``.
    Thread-safe: refresh and save hold one lock; readers get lists and entries that are replaced,
    never changed in place.
    """

    def __init__(
        self,
        kind: str,
        dirs: Sequence[Path],
        *,
        index_path: Path | None = None,
        hash_cache: HashCache | None = None,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown network kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        unique: dict[str, None] = {}
        for d in dirs:
            unique.setdefault(os.path.abspath(d), None)
        self.dirs: tuple[Path, ...] = tuple(Path(d) for d in unique)
        self.index_path = Path(index_path) if index_path is not None else None
        self.hash_cache = hash_cache
        self.version = 0
        self._lock = threading.RLock()
        self._scanned = False
        self._index_loaded = False
        self._files: dict[str, dict] = {}  # abs path -> content-derived record (the index)
        self._sidecars: dict[str, dict] = {}  # abs path of a sidecar -> size, mtime_ns, value, problem
        self._view = _View.of([], {})  # replaced as a whole, so readers never see half an update

    # --- public API ----------------------------------------------------------------------

    def refresh(self) -> CatalogChanges:
        """Rescan the folders; returns the paths added, changed (file or sidecars) and removed."""
        with self._lock:
            if not self._index_loaded:
                self._load_index()
                self._index_loaded = True
            scan = _Scan(self)
            for root in self.dirs:
                scan.root(root)
            old, new = self._view.sigs, scan.sigs
            changes = CatalogChanges(
                added=[p for p in new if p not in old],
                changed=[p for p, sig in new.items() if p in old and old[p] != sig],
                removed=[p for p in old if p not in new],
            )
            dirty = scan.dirty or len(scan.files) != len(self._files) or len(scan.sidecars) != len(self._sidecars)
            self._files, self._sidecars = scan.files, scan.sidecars
            self._install(scan.entries, new)
            if dirty:
                self._save_index()
            if changes:
                self.version += 1
            self._scanned = True
            return changes

    def items(self) -> list[NetworkEntry]:
        self._ensure_scanned()
        return list(self._view.entries)

    def get(self, name: str) -> NetworkEntry | None:
        """A1111 lookup: file name (stem) first, then an alias that is not forbidden; "none" never resolves."""
        self._ensure_scanned()
        view = self._view
        if name.lower() == "none":
            return None
        entry = view.by_name.get(name)
        if entry is not None:
            return entry
        entry = view.aliases.get(name)
        if entry is None or name.lower() in view.forbidden:
            return None
        return entry

    def alias_forbidden(self, alias: str) -> bool:
        """True when ``alias`` is shared by several files (the UI then inserts the file name instead)."""
        self._ensure_scanned()
        return alias.lower() in self._view.forbidden

    def sha256(self, entry: NetworkEntry) -> str | None:
        if self.hash_cache is None:
            return None
        try:
            return self.hash_cache.get_sha256(entry.path, f"{self.kind}/{entry.name}")
        except OSError as e:
            log.warning("cannot hash %s: %s", entry.path, e)
            return None

    def addnet_hash(self, entry: NetworkEntry) -> str | None:
        if self.hash_cache is None or entry.format != "safetensors":
            return None
        try:
            return self.hash_cache.get_addnet(entry.path, f"{self.kind}/{entry.name}")
        except (OSError, ValueError) as e:
            log.warning("cannot compute the addnet hash of %s: %s", entry.path, e)
            return None

    def shorthash(self, entry: NetworkEntry) -> str | None:
        """The short hash A1111 shows and writes to infotexts for this kind (spec §13.2)."""
        n = _SHORTHASH_LEN[self.kind]
        if self.kind == "lora":
            value = entry.metadata.get("sshs_model_hash")
            if isinstance(value, str) and value:
                return value[:n]
            value = self.addnet_hash(entry) if entry.format == "safetensors" else self.sha256(entry)
        else:
            value = self.sha256(entry)
        return value[:n] if value else None

    def save_user_metadata(self, entry: NetworkEntry, data: dict) -> NetworkEntry:
        """Merge ``data`` into ``NAME.json`` (written atomically) and return the updated entry.

        Keys already in the file and not in ``data`` are kept. A sidecar that is not a JSON object
        is replaced (with a warning), as A1111's editor does. OSError from the write goes to the caller.
        """
        with self._lock:
            self._ensure_scanned()
            apath = os.fspath(entry.path)
            if not os.path.isfile(apath):
                raise FileNotFoundError(f"{apath}: the adapter file no longer exists; user metadata not saved")
            json_path = os.path.splitext(apath)[0] + ".json"
            try:
                current = fileio.read_json(json_path, None)
            except (ValueError, OSError) as e:
                log.warning("%s: existing user metadata is unreadable (%s); replacing it", json_path, e)
                current = None
            merged = {**(current if isinstance(current, dict) else {}), **data}
            fileio.atomic_write_json(json_path, merged, indent=4)
            st = os.stat(json_path)
            self._sidecars[json_path] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "value": merged, "problem": None}
            updated = self._rebuild_one(entry)
            self._save_index()
            self.version += 1
            return updated

    # --- internals -----------------------------------------------------------------------

    def _ensure_scanned(self) -> None:
        if not self._scanned:
            with self._lock:
                if not self._scanned:
                    self.refresh()

    def _install(self, entries: list[NetworkEntry], sigs: dict[str, tuple]) -> None:
        self._view = _View.of(entries, sigs)

    def _entry_at(self, apath: str) -> NetworkEntry | None:
        pos = self._view.pos.get(apath)
        return self._view.entries[pos] if pos is not None else None

    def _rebuild_one(self, entry: NetworkEntry) -> NetworkEntry:
        """Build ``entry`` again from its folder listing (after its sidecar changed) and put it in place."""
        apath = os.fspath(entry.path)
        folder_s, name = os.path.split(apath)
        with os.scandir(folder_s) as it:
            listing = {de.name: de for de in it}
        de = listing.get(name)
        if de is None:
            raise FileNotFoundError(f"{apath}: the adapter file no longer exists")
        folder = _Folder.of(self.kind, entry.root, folder_s, listing)
        folder.rel_prefix = entry.relpath[: len(entry.relpath) - len(name)]
        scan = _Scan(self)
        stem, ext = os.path.splitext(name)
        built = scan.build(folder, de, stem, ext[1:].lower(), reuse=False)
        if built is None:
            raise FileNotFoundError(f"{apath}: the adapter file is no longer listable")
        updated, sig = built
        self._files.update(scan.files)
        self._sidecars.update(scan.sidecars)
        entries = list(self._view.entries)
        sigs = dict(self._view.sigs)
        pos = self._view.pos.get(apath)
        if pos is not None:
            entries[pos] = updated
            sigs[apath] = sig
        self._install(entries, sigs)
        return updated

    def _load_index(self) -> None:
        if self.index_path is None:
            return
        try:
            raw = fileio.read_json(self.index_path, None)
        except (ValueError, OSError) as e:
            log.warning("network index %s is unreadable (%s); rescanning all files", self.index_path, e)
            return
        if raw is None:
            return
        if (
            not isinstance(raw, dict)
            or raw.get("version") != INDEX_VERSION
            or raw.get("kind") != self.kind
            or not isinstance(raw.get("files"), dict)
            or not isinstance(raw.get("sidecars"), dict)
        ):
            log.warning("network index %s has an unexpected layout or kind; rescanning all files", self.index_path)
            return
        # Records are checked one by one when used (see _Scan.record), so a damaged one only costs a re-read.
        self._files = raw["files"]
        self._sidecars = raw["sidecars"]

    def _save_index(self) -> None:
        if self.index_path is None:
            return
        data = {"version": INDEX_VERSION, "kind": self.kind, "files": self._files, "sidecars": self._sidecars}
        try:
            fileio.atomic_write_json(self.index_path, data, indent=None)
        except (OSError, TypeError, ValueError) as e:
            log.warning("could not write network index %s: %s", self.index_path, e)


@dataclass(frozen=True)
class _View:
    """What readers see after a scan: entries in order and the lookup tables built from them."""

    entries: list[NetworkEntry]
    sigs: dict[str, tuple]  # abs path -> what the scan saw (to report changes next time)
    pos: dict[str, int]
    by_name: dict[str, NetworkEntry]
    aliases: dict[str, NetworkEntry]
    forbidden: frozenset[str]

    @classmethod
    def of(cls, entries: list[NetworkEntry], sigs: dict[str, tuple]) -> "_View":
        by_name: dict[str, NetworkEntry] = {}
        aliases: dict[str, NetworkEntry] = {}
        forbidden = {"none"}
        # A1111's rule, in listing order: an alias already known (as a name or an alias) is forbidden.
        for entry in entries:
            by_name[entry.name] = entry
            if entry.alias in aliases:
                forbidden.add(entry.alias.lower())
            aliases[entry.name] = entry
            aliases[entry.alias] = entry
        pos = {os.fspath(e.path): i for i, e in enumerate(entries)}
        return cls(entries, sigs, pos, by_name, aliases, frozenset(forbidden))


def _data_stems(listing: dict[str, os.DirEntry]) -> set[str]:
    """Stems of embedding data files in a folder: an image with the same stem is their preview."""
    stems = set()
    for name in listing:
        stem, ext = os.path.splitext(name)
        if ext[1:].lower() in _EMBEDDING_DATA:
            stems.add(stem)
    return stems


def _valid_record(rec: Any, st: os.stat_result) -> bool:
    return (
        type(rec) is dict
        and rec.get("size") == st.st_size
        and rec.get("mtime_ns") == st.st_mtime_ns
        and isinstance(rec.get("format"), str)
        and isinstance(rec.get("family"), str)
        and isinstance(rec.get("metadata"), dict)
        and isinstance(rec.get("problems"), list)
    )


def _valid_sidecar(rec: Any, st: os.stat_result) -> bool:
    return type(rec) is dict and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns


@dataclass
class _Folder:
    """One listed folder and what is worked out once for all the files in it."""

    root: Path
    path: Path
    rel_prefix: str  # "Lora/sub/"
    listing: dict[str, os.DirEntry]
    sidecars: dict[str, list[tuple[int, str, str]]]
    data_stems: set[str] | None  # embedding kind: stems of data files (their images are previews)

    @classmethod
    def of(cls, kind: str, root: Path, folder: str, listing: dict[str, os.DirEntry]) -> "_Folder":
        root_s = os.fspath(root)
        sub = folder[len(root_s) + 1:] if folder != root_s else ""
        base = os.path.basename(root_s)
        rel_prefix = f"{base}/{sub.replace(os.sep, '/')}/" if sub else f"{base}/"
        return cls(
            root=root,
            path=Path(folder),
            rel_prefix=rel_prefix,
            listing=listing,
            sidecars=sidecars.folder_sidecars(listing),
            data_stems=_data_stems(listing) if kind == "embedding" else None,
        )


class _Scan:
    """One pass over the folders: new index dicts, entries in order and their change signatures."""

    def __init__(self, catalog: NetworkCatalog):
        self.cat = catalog
        self.kind = catalog.kind
        self.exts = _EXTENSIONS[catalog.kind]
        self.files: dict[str, dict] = {}
        self.sidecars: dict[str, dict] = {}
        self.entries: list[NetworkEntry] = []
        self.sigs: dict[str, tuple] = {}
        self.dirty = False

    def root(self, root: Path) -> None:
        for folder_s, listing in _walk(os.fspath(root)):
            candidates = []
            for name in listing:
                stem, ext = os.path.splitext(name)
                ext = ext[1:].lower()
                if ext in self.exts:
                    candidates.append((name, stem, ext))
            if not candidates:
                continue
            candidates.sort(key=lambda c: fileio.natural_sort_key(c[0]))
            folder = _Folder.of(self.kind, root, folder_s, listing)
            for name, stem, ext in candidates:
                de = listing[name]
                if de.path in self.sigs:  # same file reached through overlapping roots: first one wins
                    continue
                built = self.build(folder, de, stem, ext)
                if built is not None:
                    entry, sig = built
                    self.entries.append(entry)
                    self.sigs[de.path] = sig

    def build(self, folder: _Folder, de: os.DirEntry, stem: str, ext: str, reuse: bool = True):
        """``(entry, signature)`` for one candidate file, or None when it is not listed (A1111's skips).

        The previous scan's entry object is reused when nothing about the file or its sidecars changed.
        """
        if self.kind == "hypernet" and stem == "None":
            return None
        if self.kind == "embedding" and ext in _EMBEDDING_IMAGES:
            if stem.endswith(".preview") or stem in folder.data_stems:
                return None
        try:
            st = de.stat()  # follows symlinks; a broken one raises
        except OSError:
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        if self.kind == "embedding" and st.st_size == 0:
            return None
        apath = de.path
        name = de.name
        rec = self.record(apath, ext, st)

        found = folder.sidecars.get(stem, ())
        side = []  # (role, path, record) of the JSON/text sidecars that exist
        for _, role, sc_name in found:
            if role != "preview":
                sc = self.sidecar(folder.listing[sc_name])
                if sc is not None:
                    side.append((role, sc_name, *sc))
        preview_name = sidecars.find_preview(found, folder.listing, exclude=name) if found else None
        relpath = folder.rel_prefix + name
        sig = (st.st_size, st.st_mtime_ns, tuple((n, r["size"], r["mtime_ns"]) for _, n, _, r in side), preview_name)

        if reuse and self.cat._view.sigs.get(apath) == sig:
            prev = self.cat._entry_at(apath)
            if prev is not None and prev.root == folder.root and prev.relpath == relpath:
                return prev, sig

        problems = list(rec["problems"])
        user_metadata: dict = {}
        civitai_info = None
        texts: list[str] = []
        for role, _, sc_path, sc_rec in side:
            value, problem = sc_rec.get("value"), sc_rec.get("problem")
            if role == "json":
                user_metadata, problem = sidecars.user_metadata_from(value, sc_path, problem)
            elif role == "civitai":
                civitai_info, problem = sidecars.civitai_info_from(value, sc_path, problem)
            elif not problem and isinstance(value, str):
                texts.append(value)
            if problem:
                problems.append(problem)

        metadata = rec["metadata"]
        alias = stem
        if self.kind == "lora":
            out_name = metadata.get("ss_output_name")
            if isinstance(out_name, str) and out_name:
                alias = out_name
        entry = NetworkEntry(
            kind=self.kind,
            name=stem,
            alias=alias,
            path=folder.path / name,
            root=folder.root,
            relpath=relpath,
            size=st.st_size,
            mtime=st.st_mtime,
            format=rec["format"],
            family=sidecars.sd_version_override(user_metadata) or rec["family"],
            metadata=metadata,
            preview=folder.path / preview_name if preview_name else None,
            user_metadata=user_metadata,
            civitai_info=civitai_info,
            description=sidecars.description_of(user_metadata, texts),
            problems=problems,
        )
        return entry, sig

    def record(self, apath: str, ext: str, st: os.stat_result) -> dict:
        """The index record of a file: reused while size and mtime match, else read from the file."""
        rec = self.cat._files.get(apath)
        if not _valid_record(rec, st):
            rec, keep = _analyse(self.kind, apath, ext, st)
            if not keep:  # unreadable now (permissions, I/O): try again on the next refresh
                return rec
            self.dirty = True
        self.files[apath] = rec
        return rec

    def sidecar(self, de: os.DirEntry) -> tuple[str, dict] | None:
        try:
            st = de.stat()
        except OSError:
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        path = de.path
        rec = self.cat._sidecars.get(path)
        if not _valid_sidecar(rec, st):
            value, problem, transient = sidecars.read_sidecar(path)
            rec = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "value": value, "problem": problem}
            if transient:
                return path, rec
            self.dirty = True
        self.sidecars[path] = rec
        return path, rec


def _analyse(kind: str, apath: str, ext: str, st: os.stat_result) -> tuple[dict, bool]:
    """Content-derived facts of one file; ``keep`` False when the read failed for a passing reason.

    Only safetensors headers are read: pickled files (.pt/.ckpt/.bin) are never unpickled while
    scanning, and image embeddings are decoded by the embedding loader.
    """
    rec = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": ext, "family": "Unknown", "metadata": {}, "problems": []}
    if ext != "safetensors":
        return rec, True
    try:
        header = fileio.read_safetensors_header(apath)
    except ValueError as e:
        rec["problems"] = [str(e)]
        return rec, True
    except OSError as e:
        rec["problems"] = [f"{apath}: cannot read the safetensors header: {e.strerror or e}"]
        return rec, False
    metadata = parse_metadata(header)
    rec["metadata"] = metadata
    rec["family"] = guess_family(kind, header, metadata)
    return rec, True


def _walk(root: str) -> list[tuple[str, dict[str, os.DirEntry]]]:
    """``(folder, {name: DirEntry})`` for ``root`` and every folder below it, following symlinks.

    In ``fileio.walk_files`` order (folders by natural sort of their path). A symlink back to a
    folder on the current path (a cycle) is not followed; unreadable folders are skipped with a warning.
    Unlike ``walk_files`` (which keeps whichever copy ``os.walk`` meets first), a symlink to a folder
    that is also reachable another way is listed under both paths, as A1111's own walk does: the
    result then does not depend on the order the file system lists entries in.
    """
    out: list[tuple[str, dict[str, os.DirEntry]]] = []
    stack: list[tuple[str, frozenset]] = [(root, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        try:
            st = os.stat(folder)
            with os.scandir(folder) as it:
                listing = {de.name: de for de in it}
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("cannot list %s: %s", folder, e.strerror or e)
            continue
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            log.info("not following %s: it loops back to a folder above it", folder)
            continue
        ancestors = ancestors | {key}
        out.append((folder, listing))
        for de in listing.values():
            try:
                is_dir = de.is_dir()  # follows symlinks; free for plain folders
            except OSError:
                continue
            if is_dir:
                stack.append((de.path, ancestors))
    out.sort(key=lambda item: fileio.natural_sort_key(item[0]))
    return out
