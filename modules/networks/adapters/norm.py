"""Norm (LyCORIS "norms"): trained changes of a LayerNorm / GroupNorm affine weight and bias.

    Δ = w_norm         ([C], like the norm's weight)
    Δbias = b_norm     (scaled by the multiplier only)
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32


class NormModule(AdapterModule):
    kind = "norm"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return "w_norm" in tensors or "b_norm" in tensors

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        self.w_norm = self._get("w_norm")
        self.b_norm = self._get("b_norm")

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        d = torch.zeros_like(weight) if self.w_norm is None else f32(self.w_norm, weight.device)
        return d, None if self.b_norm is None else f32(self.b_norm, weight.device)
