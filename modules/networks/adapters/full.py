"""Full / diff (LyCORIS "full"): the file stores the weight difference itself.

    Δ = diff           (shaped like the target weight)
    Δbias = diff_b     (scaled by the multiplier only)
A module with only `diff_b` changes the bias alone.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32


class FullModule(AdapterModule):
    kind = "full"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return "diff" in tensors or "diff_b" in tensors

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        self.diff = self._get("diff")
        self.diff_b = self._get("diff_b")

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        d = torch.zeros_like(weight) if self.diff is None else f32(self.diff, weight.device)
        return d, None if self.diff_b is None else f32(self.diff_b, weight.device)
