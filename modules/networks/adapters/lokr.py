"""LoKr (LyCORIS): a Kronecker product of a small and a large factor.

    w1 = lokr_w1                      or  lokr_w1_a [a, r] · lokr_w1_b [r, c]          (always 2-D, [a, c])
    w2 = lokr_w2 ([b, d] or [b, d, kh, kw])
       or lokr_w2_a [b, r] · lokr_w2_b [r, d] / [r, d·kh·kw] / [r, d, kh, kw]  (reshaped to [b, *w2_b[1:]])
       or Tucker: w2[p, q, k, l] = Σ_i Σ_j lokr_t2[i, j, k, l] · lokr_w2_a[i, p] · lokr_w2_b[j, q]
          (then lokr_w2_a is [r, b] and lokr_w2_b is [r, d])
    Δ = w1 ⊗ w2: 2-D w2 gives [a·b, c·d]; 4-D w2 gives [a·b, c·d, kh, kw] (w1 taken as [a, c, 1, 1]).
    dim = lokr_w2_b.shape[0] if present, else lokr_w1_b.shape[0], else none (scale 1 unless a "scale" key).

Conv layouts found in files: current LyCORIS keeps w2 4-D; older LyCORIS (e.g. the 2023 kohya-trained
files) factorised the flattened [out, in·kh·kw] matrix, so Δ comes out 2-D and is reshaped to the target.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32, shape_str, tucker


def _has_factor(tensors: Mapping[str, torch.Tensor], i: int) -> bool:
    return f"lokr_w{i}" in tensors or (f"lokr_w{i}_a" in tensors and f"lokr_w{i}_b" in tensors)


class LoKrModule(AdapterModule):
    kind = "lokr"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return _has_factor(tensors, 1) and _has_factor(tensors, 2)

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        self.w1 = self._get("lokr_w1")
        self.w1a = self.w1b = None
        if self.w1 is None:
            self.w1a, self.w1b = self._need("lokr_w1_a"), self._need("lokr_w1_b")
        self.w2 = self._get("lokr_w2")
        self.w2a = self.w2b = self.t2 = None
        if self.w2 is None:
            self.w2a, self.w2b = self._need("lokr_w2_a"), self._need("lokr_w2_b")
            self.t2 = self._get("lokr_t2")
        self._check_shapes()
        rank_src = self.w2b if self.w2b is not None else self.w1b
        self.dim = None if rank_src is None else int(rank_src.shape[0])

    def _check_shapes(self) -> None:
        if self.w1 is not None:
            self._check_ndim("lokr_w1", self.w1, (2,))
        else:
            self._check_ndim("lokr_w1_a", self.w1a, (2,))
            self._check_ndim("lokr_w1_b", self.w1b, (2,))
            if self.w1a.shape[1] != self.w1b.shape[0]:
                raise self._rank_error("lokr_w1_a", self.w1a, "lokr_w1_b", self.w1b)
        if self.w2 is not None:
            self._check_ndim("lokr_w2", self.w2, (2, 3, 4, 5))
        elif self.t2 is not None:
            self._check_ndim("lokr_w2_a", self.w2a, (2,))
            self._check_ndim("lokr_w2_b", self.w2b, (2,))
            if self.t2.dim() < 3 or self.t2.shape[0] != self.w2a.shape[0] or self.t2.shape[1] != self.w2b.shape[0]:
                raise self.fail(
                    f"lokr_t2 {shape_str(self.t2.shape)} does not match lokr_w2_a {shape_str(self.w2a.shape)} / "
                    f"lokr_w2_b {shape_str(self.w2b.shape)}"
                )
        else:
            self._check_ndim("lokr_w2_a", self.w2a, (2,))
            if self.w2a.shape[1] != self.w2b.shape[0]:
                raise self._rank_error("lokr_w2_a", self.w2a, "lokr_w2_b", self.w2b)

    def _factor1(self, dev: torch.device) -> torch.Tensor:
        if self.w1 is not None:
            return f32(self.w1, dev)
        return f32(self.w1a, dev) @ f32(self.w1b, dev)

    def _factor2(self, dev: torch.device) -> torch.Tensor:
        if self.w2 is not None:
            return f32(self.w2, dev)
        a, b = f32(self.w2a, dev), f32(self.w2b, dev)
        if self.t2 is not None:
            return tucker(f32(self.t2, dev), a.T, b)
        return (a @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:])

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        w1, w2 = self._factor1(weight.device), self._factor2(weight.device)
        if w2.dim() > 2:
            w1 = w1.reshape(*w1.shape, *([1] * (w2.dim() - 2)))
        return torch.kron(w1, w2.contiguous()), None
