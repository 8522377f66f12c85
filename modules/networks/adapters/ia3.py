"""(IA)^3 (LyCORIS "ia3"): a learned per-channel rescale of the current weight.

    Δ = W ⊙ w     w = `weight`, one value per output row (dim 0), or per input column (dim 1) when the
                  `on_input` flag is true. Files store w as [n] (Linear) or [1, n, 1, 1] (Conv2d).
So the merged weight is W · (1 + multiplier · w), as LyCORIS merges it.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32, shape_str


class IA3Module(AdapterModule):
    kind = "ia3"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return "weight" in tensors

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        self.w = self._need("weight")
        flag = self._scalar("on_input")
        self.on_input = bool(flag) if flag is not None else False

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        axis = 1 if self.on_input else 0
        scale = f32(self.w, weight.device).flatten()
        if weight.dim() <= axis or scale.numel() != weight.shape[axis]:
            side = "input columns" if self.on_input else "output rows"
            raise self.fail(
                f"ia3 weight has {scale.numel()} values but the target {shape_str(weight.shape)} needs one per {side}"
            )
        view = [1] * weight.dim()
        view[axis] = -1
        return weight * scale.reshape(view), None
