"""Loading tensors from model files without running code from them.

``.safetensors`` files are read with safetensors (no pickle involved). Pickle-based files
(``.ckpt``, ``.pt``, ``.bin``, ``.pth``) go through ``torch.load(weights_only=True)``: its
restricted unpickler only builds tensors and plain data, plus the handful of extra globals the
reference web UI allows (numpy scalars and arrays, ``collections.OrderedDict``, ``set``, the
pytorch_lightning ``ModelCheckpoint`` class used as a dict key in old training checkpoints).
Anything else is refused before any of it runs. ``allow_unsafe_pickle=True`` (the
``--disable-safe-unpickle`` flag) switches to a plain ``torch.load``.

Every failure is a :class:`CheckpointLoadError` naming the file.
"""
from __future__ import annotations

import codecs
import json
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointLoadError",
    "SAFETENSORS_SUFFIXES",
    "PICKLE_SUFFIXES",
    "load_state_dict",
    "torch_load_safe",
    "read_safetensors_header",
    "read_safetensors_metadata",
    "read_safetensors_shapes",
]

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".bin", ".pth")

# A safetensors header larger than this is not a header (the format itself caps it at 100 MB).
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class CheckpointLoadError(ValueError):
    """A model file could not be loaded. ``path`` is the file, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot load {self.path}: {reason}")

    def __reduce__(self):  # keep it picklable (multiprocessing, caches)
        return (type(self), (self.path, self.reason))


# --------------------------------------------------------------------------------------------
# safetensors


def read_safetensors_header(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON header of a .safetensors file (tensor entries plus ``__metadata__``), read cheaply."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointLoadError(p, "file not found")
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise CheckpointLoadError(p, f"not a safetensors file (only {size} bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n <= 0 or n > _MAX_HEADER_BYTES or 8 + n > size:
                raise CheckpointLoadError(
                    p, f"corrupt or truncated safetensors file (header length {n}, file size {size})")
            header_bytes = f.read(n)
    except OSError as e:
        raise CheckpointLoadError(p, f"cannot read the file: {e}") from e
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointLoadError(p, f"corrupt safetensors header: {e}") from e
    if not isinstance(header, dict):
        raise CheckpointLoadError(p, "corrupt safetensors header: not a JSON object")
    # The data section must hold every tensor, or the file was cut short.
    end = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as e:
            raise CheckpointLoadError(p, f"corrupt safetensors header entry {key!r}") from e
    if 8 + n + end > size:
        raise CheckpointLoadError(
            p, f"truncated safetensors file: the header describes {8 + n + end} bytes, the file has {size}")
    return header


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` string map of a .safetensors file (empty dict if it has none)."""
    meta = read_safetensors_header(path).get("__metadata__") or {}
    return dict(meta) if isinstance(meta, dict) else {}


def read_safetensors_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` from the header alone: enough to detect an architecture."""
    header = read_safetensors_header(path)
    return {k: tuple(v.get("shape", ())) for k, v in header.items() if k != "__metadata__"}


def _load_safetensors(p: Path, device: str) -> dict[str, torch.Tensor]:
    read_safetensors_header(p)  # clear errors for truncated or corrupt files
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device=str(device))
    except Exception as e:  # SafetensorError, OSError, RuntimeError ...
        raise CheckpointLoadError(p, f"corrupt safetensors file: {e}") from e


# --------------------------------------------------------------------------------------------
# pickle


class _LightningModelCheckpointStub:
    """Stands in for pytorch_lightning's ModelCheckpoint class, which old SD training
    checkpoints use as a dict key in their ``callbacks`` entry. Nothing of it is ever run."""


def _extra_safe_globals() -> list:
    import numpy as np

    try:
        from numpy._core import multiarray as _ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma
    items: list = []
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        items.append((_ma.scalar, f"{mod}.scalar"))
        items.append((_ma._reconstruct, f"{mod}._reconstruct"))
    items += [np.dtype, np.ndarray, (np.dtype, "numpy.dtype"), (np.ndarray, "numpy.ndarray")]
    dtypes_mod = getattr(np, "dtypes", None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            obj = getattr(dtypes_mod, name)
            if name.endswith("DType") and isinstance(obj, type):
                items.append(obj)
    items += [
        (codecs.encode, "_codecs.encode"),
        (set, "__builtin__.set"),
        (set, "builtins.set"),
        OrderedDict,
        (_LightningModelCheckpointStub, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
    ]
    return items


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_OPCODE_RE = re.compile(r"Unsupported operand (\d+)")


def _refusal_reason(err: Exception) -> str:
    text = str(err)
    m = _GLOBAL_RE.search(text)
    if m:
        name = m.group(1)
        what = f"the pickle references {name if '.' in name else 'builtins.' + name}"
    else:
        m = _OPCODE_RE.search(text)
        if m:
            what = f"the pickle uses an operation the safe loader does not allow (opcode {m.group(1)})"
        else:
            first = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), "")
            what = f"the pickle holds something other than tensors and plain data ({first or type(err).__name__})"
    return (f"refused: {what}. The file may be malicious, so it was not read; load it only if you trust "
            "its source (--disable-safe-unpickle)")


def _is_refusal(err: Exception) -> bool:
    text = str(err)
    return "Weights only load failed" in text or "Unsupported global" in text or "Unsupported operand" in text


def torch_load_safe(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False,
                    map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` a pickle-based file, restricted to tensors and plain data unless
    ``allow_unsafe_pickle``. Returns whatever object the file holds."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointLoadError(p, "file not found")
    if p.stat().st_size == 0:
        raise CheckpointLoadError(p, "the file is empty")
    if allow_unsafe_pickle:
        try:
            return torch.load(str(p), map_location=map_location, weights_only=False)
        except Exception as e:
            raise CheckpointLoadError(p, f"corrupt or unreadable file: {e}") from e
    try:
        with torch.serialization.safe_globals(_extra_safe_globals()):
            return torch.load(str(p), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if _is_refusal(e):
            raise CheckpointLoadError(p, _refusal_reason(e)) from e
        raise CheckpointLoadError(p, f"corrupt or truncated file: {e}") from e
    except (EOFError, zipfile.BadZipFile, struct.error, UnicodeDecodeError) as e:
        raise CheckpointLoadError(p, f"corrupt or truncated file: {e or type(e).__name__}") from e
    except RuntimeError as e:
        if _is_refusal(e):
            raise CheckpointLoadError(p, _refusal_reason(e)) from e
        raise CheckpointLoadError(p, f"corrupt or truncated file: {e}") from e
    except Exception as e:  # anything else a damaged file can provoke
        if _is_refusal(e):
            raise CheckpointLoadError(p, _refusal_reason(e)) from e
        raise CheckpointLoadError(p, f"corrupt or unreadable file: {type(e).__name__}: {e}") from e


# --------------------------------------------------------------------------------------------
# state dicts


def _tensors_only(obj: Any) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return {}


def load_state_dict(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False,
                    device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a model file as ``{name: tensor}``.

    ``.safetensors`` is read with safetensors; ``.ckpt``/``.pt``/``.bin``/``.pth`` with the
    restricted unpickler (any other suffix only with ``allow_unsafe_pickle``). A top-level
    ``"state_dict"`` entry is unwrapped; non-tensor entries (``global_step`` ...) are dropped.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointLoadError(p, "file not found")
    suffix = p.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        sd = _load_safetensors(p, str(device))
    else:
        if suffix not in PICKLE_SUFFIXES and not allow_unsafe_pickle:
            raise CheckpointLoadError(
                p, f"unknown file type {suffix or '(no suffix)'!r}: expected .safetensors, "
                   f"{', '.join(PICKLE_SUFFIXES)}")
        obj = torch_load_safe(p, allow_unsafe_pickle=allow_unsafe_pickle, map_location=device)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        sd = _tensors_only(obj)
    if not sd:
        raise CheckpointLoadError(p, "the file contains no tensors")
    return sd
