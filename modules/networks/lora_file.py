"""A LoRA/LyCORIS file on disk -> a `LoraNetwork`: one adapter module per target module of the loaded model.

Loading is all or nothing: every key of the file must belong to a module of the loaded model, every group of keys
must be a known adapter type, and every delta must fit its target's shape (checked on the meta device, so no
arithmetic is done). Otherwise `NetworkLoadError` names the file, the format recognised and the first keys or
modules at fault, and nothing of the file is used.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modules.networks.adapters import AdapterModule, create_module
from modules.networks.adapters.base import AdapterError
from modules.networks.lora_keys import KeyMapper, ModuleTarget

log = logging.getLogger(__name__)

SHOWN_KEYS = 5


class NetworkLoadError(ValueError):
    pass


@dataclass(eq=False)
class LoraNetwork:
    name: str
    filename: str
    mtime: float
    format: str
    modules: dict[ModuleTarget, AdapterModule]
    bundled_embeddings: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, float]:
        """Identity of this file version: a changed file gives new signatures, so its modules are re-merged."""
        return (self.filename, self.mtime)

    def nbytes(self) -> int:
        return sum(m.tensors_bytes() for m in self.modules.values())


def read_state_dict(path: Path, *, allow_unsafe_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and (safetensors) metadata of an adapter file, loaded on the CPU without running pickled code."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open

        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
        return tensors, metadata
    from modules.models.safe_load import torch_load_safe

    data = torch_load_safe(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise NetworkLoadError(f"{path}: not a LoRA file (holds a {type(data).__name__}, expected a dict of tensors)")
    return {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}, {}


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown + (f" and {len(items) - SHOWN_KEYS} more" if len(items) > SHOWN_KEYS else "")


def load_lora(path: str | Path, mapper: KeyMapper, *, name: str | None = None, family: str | None = None,
              allow_unsafe_pickle: bool = False) -> LoraNetwork:
    """Read and check one file against the loaded model. `family`: what the catalog thinks the file is for
    (only used to explain a mismatch)."""
    path = Path(path)
    name = name or path.stem
    try:
        state_dict, metadata = read_state_dict(path, allow_unsafe_pickle=allow_unsafe_pickle)
    except NetworkLoadError:
        raise
    except Exception as e:
        raise NetworkLoadError(f"{path}: could not be read: {e}") from e
    if not state_dict:
        raise NetworkLoadError(f"{path}: holds no tensors")
    converted = mapper.convert(state_dict, metadata)
    if converted.unmatched:
        hint = ""
        if family and family.lower() not in ("unknown", mapper.family.lower()):
            hint = f" (the file is for {family}, the loaded model is {mapper.family.upper()})"
        raise NetworkLoadError(
            f"{path}: {len(converted.unmatched)} of {len(state_dict)} keys ({converted.format} format) match no module "
            f"of the loaded model{hint}: {_listing(converted.unmatched)}")
    if not converted.groups and not converted.embeddings:
        raise NetworkLoadError(f"{path}: no LoRA modules found ({converted.format} format)")
    modules: dict[ModuleTarget, AdapterModule] = {}
    bad: list[str] = []
    for target, tensors in converted.groups.items():
        try:
            module = create_module(f"{target.component}:{target.path}", tensors)
            _check_shape(module, mapper.target_module(target))
        except AdapterError as e:
            bad.append(str(e))
            continue
        modules[target] = module
    if bad:
        raise NetworkLoadError(f"{path}: {len(bad)} of {len(converted.groups)} modules cannot be applied "
                               f"({converted.format} format): {_listing(bad)}")
    return LoraNetwork(name=name, filename=str(path), mtime=path.stat().st_mtime, format=converted.format,
                       modules=modules, bundled_embeddings=converted.embeddings, metadata=metadata)


def _check_shape(module: AdapterModule, target: torch.nn.Module) -> None:
    """Let the adapter compute its delta on meta tensors: shape errors surface now, at no arithmetic cost."""
    weight = getattr(target, "weight", None)
    if weight is None:
        raise AdapterError(f"{module.kind} module targets a {type(target).__name__}, which has no weight")
    meta_weight = torch.empty(weight.shape, device="meta", dtype=torch.float32)
    bias = getattr(target, "bias", None)
    meta_bias = torch.empty(bias.shape, device="meta", dtype=torch.float32) if bias is not None else None
    try:
        d_weight, _ = module.delta(meta_weight, 1.0, bias=meta_bias)
    except AdapterError:
        raise
    except NotImplementedError as e:
        # Some linear-algebra kernels have no meta implementation; the real apply will check again.
        log.debug("meta shape check skipped for %s: %s", module.kind, e)
        return
    except RuntimeError as e:
        raise AdapterError(f"{module.kind} module does not fit {type(target).__name__}{tuple(weight.shape)}: {e}") from e
    if tuple(d_weight.shape) != tuple(weight.shape):
        raise AdapterError(f"{module.kind} delta has shape {tuple(d_weight.shape)}, the weight {tuple(weight.shape)}")
