"""LoRA / LyCORIS weight maths: one file per adapter type over `base.AdapterModule`.

`create_module(key, tensors)` picks the type for one module of a file (its param names after the first
dot of the kohya key) by trying `ADAPTER_TYPES` in A1111's detection order; `module.delta(weight, m)`
gives the float32 (ΔW, Δbias) to add to the target.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterError, AdapterModule
from .full import FullModule
from .glora import GLoRAModule
from .ia3 import IA3Module
from .loha import LoHaModule
from .lokr import LoKrModule
from .lora import LoRAModule
from .norm import NormModule
from .oft import OFTModule

# A1111's order (spec §3.4): lora, hada, ia3, lokr, full, norm, glora, oft.
ADAPTER_TYPES: tuple[type[AdapterModule], ...] = (
    LoRAModule,
    LoHaModule,
    IA3Module,
    LoKrModule,
    FullModule,
    NormModule,
    GLoRAModule,
    OFTModule,
)


def create_module(key: str, tensors: Mapping[str, torch.Tensor]) -> AdapterModule:
    """The first type in `ADAPTER_TYPES` that accepts these param names, built from `tensors`."""
    for cls in ADAPTER_TYPES:
        if cls.matches(tensors):
            return cls(key, dict(tensors))
    raise AdapterError(f"{key}: no LoRA/LyCORIS type matches its tensors {sorted(tensors)}")


__all__ = [
    "ADAPTER_TYPES",
    "AdapterError",
    "AdapterModule",
    "FullModule",
    "GLoRAModule",
    "IA3Module",
    "LoHaModule",
    "LoKrModule",
    "LoRAModule",
    "NormModule",
    "OFTModule",
    "create_module",
]
