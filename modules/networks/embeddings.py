"""Textual-inversion embeddings: the registered set and the token lookup the conditioner uses (spec §2).

`EmbeddingDatabase.load` reads the candidate files the catalog lists (only when that list, a file's size or
mtime, the tokenizer or the model's width changed), registers embeddings of the model's width under their
trigger and puts the others in `skipped`. Embeddings bundled in active LoRAs come in through `set_bundled`.
The conditioner finds triggers by token ids (`find_embedding_at_position`, the `EmbeddingLookup` protocol of
`modules.text_chunks`); `infotext_hashes` gives the "TI hashes" infotext value.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from modules.networks.embedding_files import (
    EMBEDDING_SUFFIXES,
    Embedding,
    EmbeddingLoadError,
    embedding_from_data,
    is_embedding_candidate,
    load_embedding_file,
)

__all__ = [
    "EMBEDDING_SUFFIXES",
    "Embedding",
    "EmbeddingDatabase",
    "EmbeddingLoadError",
    "embedding_from_data",
    "load_embedding_file",
]

log = logging.getLogger(__name__)

HASH_TITLE_PREFIX = "textual_inversion/"

# (path, size, mtime_ns) of each candidate; None size/mtime for a file that vanished after listing.
FileStamp = tuple[str, int | None, int | None]


@dataclass(frozen=True)
class _Lookup:
    """Immutable snapshot read by `find_embedding_at_position` (replaced whole, so readers need no lock)."""

    by_first_id: dict[int, list[tuple[tuple[int, ...], Embedding]]] = field(default_factory=dict)


def _stamp(path: str) -> FileStamp:
    try:
        st = os.stat(path)
    except OSError:
        return path, None, None
    return path, st.st_size, st.st_mtime_ns


def _sorted_by_name(items: Mapping[str, Embedding]) -> dict[str, Embedding]:
    return dict(sorted(items.items(), key=lambda kv: kv[0].lower()))


def _same(a: Embedding, b: Embedding) -> bool:
    """Same trigger, origin and vectors."""
    if a is b:
        return True
    if (a.name, a.source, a.filename) != (b.name, b.source, b.filename) or type(a.vec) is not type(b.vec):
        return False
    if isinstance(a.vec, dict):
        return a.vec.keys() == b.vec.keys() and all(torch.equal(a.vec[k], b.vec[k]) for k in a.vec)
    return torch.equal(a.vec, b.vec)


def _clean_infotext_name(name: str) -> str:
    return name.replace(":", "").replace(",", "")


class EmbeddingDatabase:
    """The embeddings of the current model. See the module docstring.

    `hash_fn(path, title)` returns a file's full sha256 (the engine passes `HashCache.get_sha256`);
    `allow_unsafe_pickle` is `--disable-safe-unpickle`.
    """

    def __init__(self, *, hash_fn: Callable[[str, str], str | None] | None = None,
                 allow_unsafe_pickle: bool = False):
        self.hash_fn = hash_fn
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.word_embeddings: dict[str, Embedding] = {}
        self.skipped: dict[str, Embedding] = {}
        self.errors: dict[str, str] = {}
        self.version = 0
        self._lock = threading.RLock()
        self._signature: tuple | None = None
        self._tokenizer: Any = None
        self._expected_width: int | None = None
        self._file_loaded: list[Embedding] = []  # every embedding read from a file, in listing order
        self._bundled: dict[str, Embedding] = {}
        self._token_ids: dict[str, tuple[int, ...]] = {}  # trigger -> ids, for the current tokenizer
        self._hashes: dict[str, str | None] = {}  # filename -> sha256, for the files as last loaded
        self._lookup = _Lookup()

    # --- loading ----------------------------------------------------------------------------------------

    def load(self, files: Sequence[str | os.PathLike], *, tokenizer, expected_width: int,
             force: bool = False) -> bool:
        """Reads `files` (candidates in listing order) unless neither they (path, size, mtime), the
        tokenizer nor `expected_width` changed since the last load; `force` reads them anyway. Returns
        True when it reloaded."""
        with self._lock:
            stamps = tuple(_stamp(str(f)) for f in files if is_embedding_candidate(f))
            signature = (stamps, int(expected_width))
            # The tokenizer is compared by identity: a new model brings a new tokenizer object.
            if not force and signature == self._signature and tokenizer is self._tokenizer:
                return False
            if tokenizer is not self._tokenizer:
                self._token_ids = {}
            self._tokenizer = tokenizer
            self._expected_width = int(expected_width)
            loaded, errors = [], {}
            for path, size, _ in stamps:
                if size is None:
                    errors[path] = "file not found"
                    continue
                if size == 0:  # the reference skips empty files without a word
                    continue
                try:
                    embedding = load_embedding_file(path, allow_unsafe_pickle=self.allow_unsafe_pickle)
                except EmbeddingLoadError as e:
                    errors[path] = e.reason
                    continue
                except Exception as e:  # a damaged file must not stop the others from loading
                    errors[path] = f"{type(e).__name__}: {e}"
                    continue
                if embedding is not None:
                    loaded.append(embedding)
            self._file_loaded = loaded
            self.errors = errors
            self._hashes = {}
            self._signature = signature
            self._rebuild()
            for path, reason in errors.items():
                log.warning("Textual inversion embedding %s not loaded: %s", path, reason)
            log.info("Textual inversion embeddings loaded(%d): %s", len(self.word_embeddings),
                     ", ".join(self.word_embeddings))
            if self.skipped:
                log.info("Textual inversion embeddings skipped(%d): %s", len(self.skipped), ", ".join(self.skipped))
            return True

    def set_bundled(self, embeddings: Mapping[str, Embedding]) -> None:
        """Embeddings bundled in the active LoRAs, by trigger. They are registered unless a file embedding
        of that name is; the set replaces the previous one (`{}` removes them all)."""
        with self._lock:
            new = dict(embeddings)
            # Callers rebuild the objects on every activation; an unchanged set must not bump `version`
            # (it keys conditioning caches), so equal content keeps the registered objects.
            if new.keys() == self._bundled.keys() and all(_same(new[k], self._bundled[k]) for k in new):
                return
            self._bundled = new
            self._rebuild()

    def _ids_of(self, names: Iterable[str]) -> dict[str, tuple[int, ...]]:
        """Token ids of each trigger (no BOS/EOS) with the current tokenizer, tokenized once."""
        missing = [n for n in dict.fromkeys(names) if n not in self._token_ids]
        if missing and self._tokenizer is not None:
            ids = self._tokenizer(missing, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
            self._token_ids.update({n: tuple(int(i) for i in t) for n, t in zip(missing, ids)})
        return {n: self._token_ids.get(n, ()) for n in names}

    def _fits(self, embedding: Embedding) -> bool:
        return self._expected_width is None or embedding.shape == self._expected_width

    def _rebuild(self) -> None:
        """Recomputes the registered set, `skipped` and the token lookup from the loaded files and the
        bundled set, then bumps `version`."""
        registered: dict[str, Embedding] = {}
        skipped: dict[str, Embedding] = {}
        for embedding in self._file_loaded:  # listing order: a later file of the same trigger wins
            (registered if self._fits(embedding) else skipped)[embedding.name] = embedding
        file_names = set(registered)
        for name, embedding in self._bundled.items():
            if name in file_names:
                log.info("Embedding %s bundled in %s is not used: a file embedding of that name is loaded",
                            name, embedding.source)
                continue
            (registered if self._fits(embedding) else skipped)[name] = embedding

        by_first_id: dict[int, list[tuple[tuple[int, ...], Embedding]]] = {}
        for name, ids in self._ids_of(registered).items():
            if ids:
                by_first_id.setdefault(ids[0], []).append((ids, registered[name]))
        for candidates in by_first_id.values():
            candidates.sort(key=lambda item: len(item[0]), reverse=True)  # stable: longest first

        self.word_embeddings = _sorted_by_name(registered)
        self.skipped = _sorted_by_name(skipped)
        self._lookup = _Lookup(by_first_id)
        self.version += 1

    # --- lookup -----------------------------------------------------------------------------------------

    def find_embedding_at_position(self, tokens: list[int], offset: int) -> tuple[Embedding | None, int]:
        """The registered embedding whose trigger ids start at `tokens[offset]` (longest first) and the
        number of tokens it covers; `(None, 0)` if none."""
        candidates = self._lookup.by_first_id.get(tokens[offset]) if 0 <= offset < len(tokens) else None
        for ids, embedding in candidates or ():
            if tuple(tokens[offset:offset + len(ids)]) == ids:
                return embedding, len(ids)
        return None, 0

    # --- hashes -----------------------------------------------------------------------------------------

    def shorthash(self, embedding: Embedding) -> str | None:
        """sha256[:12] of the embedding's file; None for bundled embeddings or without `hash_fn`."""
        if self.hash_fn is None or embedding.source != "file" or not embedding.filename:
            return None
        filename = embedding.filename
        if filename not in self._hashes:
            try:
                self._hashes[filename] = self.hash_fn(filename, HASH_TITLE_PREFIX + embedding.name)
            except OSError as e:
                log.warning("Cannot hash embedding %s: %s", filename, e)
                return None
        full = self._hashes[filename]
        return full[:12] if full else None

    def infotext_hashes(self, used: Iterable[Embedding]) -> str | None:
        """The "TI hashes" value: `name: 12hex` for each used embedding that has a hash, first use first."""
        entries: dict[str, str] = {}
        for embedding in used:
            name = _clean_infotext_name(embedding.name)
            if name in entries:
                continue
            short = self.shorthash(embedding)
            if short:
                entries[name] = short
        return ", ".join(f"{name}: {short}" for name, short in entries.items()) or None

    # --- reporting --------------------------------------------------------------------------------------

    def all_embeddings(self) -> dict[str, Embedding]:
        """Registered and skipped, as `GET /sdapi/v1/embeddings` reports them."""
        return {**self.skipped, **self.word_embeddings}


def file_paths(folder: str | os.PathLike) -> list[Path]:
    """Candidate files under `folder` in the reference's walk order (recursive, links followed, sorted
    within each directory). The catalog normally supplies the list; this serves tools and tests."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        found += [Path(root) / n for n in sorted(names) if is_embedding_candidate(n)]
    return found
