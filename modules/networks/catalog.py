"""The adapter "model manager": lists LoRA/LyCORIS, hypernetwork and embedding files (spec §1.1, §2.1, §3.1).

A :class:`NetworkCatalog` walks its folders in A1111's order and gives one :class:`NetworkEntry` per
file, with what the UI and the loaders need: names and aliases, safetensors metadata, the base
model family, sidecars (user metadata, civitai info, description, preview) and lazy hashes.

Speed comes from a persistent index (a JSON file per catalog): for every file it keeps the size
and mtime_ns it had and what listing, lookup and the family need from its contents (the family,
header problems and the *light* metadata: values of at most ``LIGHT_STR_MAX`` characters), and
for every sidecar its size, mtime_ns and parsed content (only part of a big one). A start with a
warm index therefore lists folders and stats files but reads no file contents; a file or sidecar
is read again only when its size or mtime changed. Big metadata (kohya's ``ss_tag_frequency``,
``ss_bucket_info``, ``ssmd_cover_images``: tens of KB to MBs per file) stays out of the index: an
entry reads it from the file header the first time ``NetworkEntry.metadata`` is asked for.
Hashes are never computed while scanning (see ``sha256``).

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

from modules.core import fileio
from modules.models.hashes import HashCache
from modules.networks import sidecars

log = logging.getLogger(__name__)

KINDS = ("lora", "hypernet", "embedding")
INDEX_VERSION = 2  # 2: light metadata only (1 kept all of it); older indexes are discarded
# Metadata values (and keys) longer than this stay out of the index and out of ``light_metadata``.
LIGHT_STR_MAX = 256
# More keys than this: the first ones (lookup keys first) are kept; real kohya files have about 60-90.
LIGHT_MAX_KEYS = 256
# What alias, shorthash and family use: kept first so LIGHT_MAX_KEYS never drops them.
_LOOKUP_KEYS = ("ss_output_name", "sshs_model_hash", "ss_base_model_version", "ss_v2")

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


@dataclass(frozen=True)
class SidecarRef:
    """One JSON/text sidecar of an entry: its validated value, or only part of it (``partial``).

    ``value``: user metadata dict, civitai info dict (None when unusable) or text (None when
    unusable); a partial one holds what the index keeps (see ``sidecars.index_value``).
    """

    role: str  # json, civitai or text
    path: str
    value: Any
    partial: bool = False


_UNKNOWN = object()  # a user-metadata value that only the whole sidecar can tell


@dataclass
class NetworkEntry:
    """One adapter file. Listing fields come from the index; the rest is read on first use.

    ``light_metadata`` is the short part of the safetensors metadata that the index keeps (values of
    at most ``LIGHT_STR_MAX`` characters); ``metadata`` is all of it, read from the file header the
    first time it is asked for (no read when the light part is already everything) and then kept.
    ``user_metadata``, ``civitai_info`` and ``description`` likewise read a big sidecar only when used.
    Lazy loads fill the private caches of an entry in place; two threads racing on one read the
    same file and keep equal values, so no lock is needed. Treat every dict here as read-only.
    """

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
    light_metadata: dict = field(default_factory=dict)
    preview: Path | None = None
    problems: list[str] = field(default_factory=list)
    # Caches: None = not read yet. A test may pass _metadata to build an entry without a file.
    _metadata: dict | None = field(default=None, repr=False, compare=False)
    _sidecars: tuple[SidecarRef, ...] = field(default=(), repr=False)
    _user_metadata: dict | None = field(default=None, repr=False, compare=False)
    _civitai_info: Any = field(default=_UNKNOWN, repr=False, compare=False)
    _description: str | None = field(default=None, repr=False, compare=False)

    @property
    def metadata(self) -> dict:
        """Full safetensors ``__metadata__`` as ``fileio.read_safetensors_metadata`` gives it; {} when unreadable."""
        meta = self._metadata
        if meta is None:
            meta = self._read_metadata()
        return meta

    @property
    def user_metadata(self) -> dict:
        if self._user_metadata is None:
            self._user_metadata = self._load_side("json", {})
        return self._user_metadata

    @property
    def civitai_info(self) -> dict | None:
        if self._civitai_info is _UNKNOWN:
            self._civitai_info = self._load_side("civitai", None)
        return self._civitai_info

    @property
    def description(self) -> str:
        """JSON ``description`` wins over ``NAME.txt`` / ``NAME.description.txt`` (first usable one)."""
        if self._description is None:
            self._description = self._describe(load=True)
        return self._description

    @property
    def hidden(self) -> bool:
        """In a folder (or named) starting with "." : A1111 shows such items only when searched for."""
        return any(part.startswith(".") for part in self.relpath.split("/"))

    @property
    def preferred_weight(self) -> float:
        value = self._user_value("preferred weight")
        return sidecars.preferred_weight({} if value is None else {"preferred weight": value})

    @property
    def activation_text(self) -> str:
        value = self._user_value("activation text")
        return value if isinstance(value, str) else ""

    # --- lazy parts ----------------------------------------------------------------------

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def _read_metadata(self) -> dict:
        if self.format != "safetensors":
            self._metadata = {}
            return self._metadata
        try:
            meta = parse_metadata(fileio.read_safetensors_header(self.path))
        except ValueError as e:
            self._note(str(e))
            meta = {}
        except OSError as e:
            self._note(_header_read_problem(self.path, e))
            return {}  # a passing failure (permissions, I/O): try again next time
        self._metadata = meta
        return meta

    def _side(self, role: str) -> SidecarRef | None:
        for side in self._sidecars:
            if side.role == role:
                return side
        return None

    def _load_side(self, role: str, empty: Any) -> Any:
        """Whole value of the ``role`` sidecar: the kept one, or read again when the index has only part of it."""
        side = self._side(role)
        if side is None:
            return empty
        if not side.partial:
            return side.value
        value, problem, _ = sidecars.read_sidecar(side.path)
        check = sidecars.user_metadata_from if role == "json" else sidecars.civitai_info_from
        value, problem = check(value, side.path, problem)
        if problem:
            self._note(problem)
        return value if value is not None else empty

    def _user_value(self, key: str, load: bool = True) -> Any:
        """``user_metadata[key]`` (None when absent), from the kept part when it holds the key.

        When only the whole sidecar can tell: loads it, or returns ``_UNKNOWN`` if not ``load``.
        """
        side = self._side("json")
        if side is None:
            return None
        if self._user_metadata is not None:
            return self._user_metadata.get(key)
        kept = side.value if isinstance(side.value, dict) else {}
        if not side.partial or key in kept:
            return kept.get(key)
        return self.user_metadata.get(key) if load else _UNKNOWN

    def _describe(self, load: bool) -> str | None:
        """The description, or None when it needs a sidecar the index keeps only part of and not ``load``."""
        desc = self._user_value("description", load)
        if desc is _UNKNOWN:
            return None
        if isinstance(desc, str) and desc:
            return desc
        for side in self._sidecars:
            if side.role != "text":
                continue
            text = side.value
            if side.partial:
                if not load:
                    return None
                text, problem, _ = sidecars.read_sidecar(side.path)
                if problem:
                    self._note(problem)
            if isinstance(text, str):
                return text
        return ""


@dataclass
class CatalogChanges:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def parse_metadata(header: dict) -> dict:
    """``__metadata__`` of a parsed safetensors header, as ``fileio.read_safetensors_metadata`` gives it."""
    return fileio.safetensors_metadata_from_header(header)


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
            value = entry.light_metadata.get("sshs_model_hash")  # from the index: no file read
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
            self._sidecars[json_path] = _sidecar_record(json_path, st, merged, None)
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
            # Compact: the index is rewritten whole after every change, so its size is the cost.
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            fileio.atomic_write_text(self.index_path, text + "\n")
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
        and isinstance(rec.get("light"), dict)
        and isinstance(rec.get("complete"), bool)
        and isinstance(rec.get("problems"), list)
    )


def _valid_sidecar(rec: Any, st: os.stat_result) -> bool:
    return (
        type(rec) is dict
        and rec.get("size") == st.st_size
        and rec.get("mtime_ns") == st.st_mtime_ns
        and isinstance(rec.get("partial"), bool)
        and (rec["partial"] is False or isinstance(rec.get("value"), (dict, type(None))))
    )


def _sidecar_record(path: str, st: os.stat_result, value: Any, problem: str | None) -> dict:
    value, partial, problem = sidecars.index_value(path, st.st_size, value, problem)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "value": value, "problem": problem, "partial": partial}


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
        refs = []
        for role, _, sc_path, sc_rec in side:
            value, problem, partial = sc_rec.get("value"), sc_rec.get("problem"), sc_rec.get("partial") is True
            if role == "json":
                value, problem = sidecars.user_metadata_from(value, sc_path, problem)
            elif role == "civitai":
                value, problem = sidecars.civitai_info_from(value, sc_path, problem)
            elif problem or not isinstance(value, str):
                value = None
            if problem:
                problems.append(problem)
                partial = False
            refs.append(SidecarRef(role, sc_path, value, partial))

        light = rec["light"]
        alias = stem
        if self.kind == "lora":
            out_name = light.get("ss_output_name")
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
            family=rec["family"],
            light_metadata=light,
            preview=folder.path / preview_name if preview_name else None,
            problems=problems,
            _metadata=light if rec["complete"] else None,
            _sidecars=tuple(refs),
        )
        # Both from the kept parts of the sidecars; a value too big for the index is no SD version.
        version = entry._user_value("sd version", load=False)
        entry.family = sidecars.sd_version_override({"sd version": version}) or entry.family
        entry._description = entry._describe(load=False)
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
            rec = _sidecar_record(path, st, value, problem)
            if transient:
                return path, rec
            self.dirty = True
        self.sidecars[path] = rec
        return path, rec


def _analyse(kind: str, apath: str, ext: str, st: os.stat_result) -> tuple[dict, bool]:
    """Index record of one file from its contents; ``keep`` False when the read failed for a passing reason.

    Only safetensors headers are read: pickled files (.pt/.ckpt/.bin) are never unpickled while
    scanning, and image embeddings are decoded by the embedding loader. ``complete`` says whether
    ``light`` is all the metadata (then ``NetworkEntry.metadata`` needs no read).
    """
    rec = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": ext, "family": "Unknown",
           "light": {}, "complete": True, "problems": []}
    if ext != "safetensors":
        return rec, True
    try:
        header = fileio.read_safetensors_header(apath)
    except ValueError as e:
        rec["problems"] = [str(e)]
        return rec, True
    except OSError as e:
        rec["problems"] = [_header_read_problem(apath, e)]
        rec["complete"] = False
        return rec, False
    metadata = parse_metadata(header)
    raw = header.get("__metadata__")
    rec["light"], rec["complete"] = light_metadata(raw if isinstance(raw, dict) else {}, metadata)
    rec["family"] = guess_family(kind, header, metadata)
    return rec, True


def light_metadata(raw: dict, metadata: dict) -> tuple[dict, bool]:
    """The part of ``metadata`` (parsed from ``raw``) the index keeps, and whether that is all of it.

    Kept: keys whose raw value is a string of at most ``LIGHT_STR_MAX`` characters (with its parsed
    value, so a kept key reads the same as in the full metadata) or a JSON scalar, at most
    ``LIGHT_MAX_KEYS`` of them with the lookup keys first.
    """
    light: dict = {}
    order = [k for k in _LOOKUP_KEYS if k in raw] + [k for k in raw if k not in _LOOKUP_KEYS]
    for key in order:
        if len(light) >= LIGHT_MAX_KEYS:
            break
        value = raw[key]
        if len(key) > LIGHT_STR_MAX:
            continue
        if isinstance(value, str) and len(value) > LIGHT_STR_MAX:
            continue
        if not (value is None or isinstance(value, (str, bool, int, float))):
            continue
        light[key] = metadata[key]
    if len(light) == len(metadata):
        light = metadata  # same keys and values: keep the file's key order
    return light, len(light) == len(metadata)


def _header_read_problem(path: str | os.PathLike, e: OSError) -> str:
    return f"{os.fspath(path)}: cannot read the safetensors header: {e.strerror or e}"


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
