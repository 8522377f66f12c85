"""LoHa (LyCORIS "hada"): the Hadamard product of two low-rank products.

    Δ = (w1a · w1b) ⊙ (w2a · w2b)        w·a [out, r], w·b [r, in] or [r, in·kh·kw] or [r, in, kh, kw]
    CP/Tucker half (hada_t1 / hada_t2 [r, r, kh, kw]; then w·a is [r, out] and w·b is [r, in]):
        half[p, q, k, l] = Σ_i Σ_j t[i, j, k, l] · wa[i, p] · wb[j, q]
    dim = r = hada_w1_b.shape[0]; the scale is alpha / r.

Each half may be CP or plain on its own; a flattened plain half is reshaped to the CP half's shape.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32, shape_str, tucker

_NAMES = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")


class LoHaModule(AdapterModule):
    kind = "loha"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return all(n in tensors for n in _NAMES)

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        self.halves = [
            (self._need(f"hada_w{i}_a"), self._need(f"hada_w{i}_b"), self._get(f"hada_t{i}")) for i in (1, 2)
        ]
        for i, (a, b, t) in enumerate(self.halves, start=1):
            self._check_half(i, a, b, t)
        self.dim = int(self.halves[0][1].shape[0])

    def _check_half(self, i: int, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | None) -> None:
        if t is None:
            self._check_ndim(f"hada_w{i}_a", a, (2, 4))
            if a.flatten(1).shape[1] != b.shape[0]:
                raise self._rank_error(f"hada_w{i}_a", a, f"hada_w{i}_b", b)
            return
        self._check_ndim(f"hada_t{i}", t, (3, 4, 5))
        self._check_ndim(f"hada_w{i}_a", a, (2,))
        self._check_ndim(f"hada_w{i}_b", b, (2,))
        if t.shape[0] != a.shape[0] or t.shape[1] != b.shape[0]:
            raise self.fail(
                f"hada_t{i} {shape_str(t.shape)} does not match hada_w{i}_a {shape_str(a.shape)} / "
                f"hada_w{i}_b {shape_str(b.shape)} (expected [{a.shape[0]}, {b.shape[0]}, ...])"
            )

    @staticmethod
    def _half(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        if t is not None:
            return tucker(t, a.T, b)
        return (a.flatten(1) @ b.flatten(1)).reshape(a.shape[0], *b.shape[1:])

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        dev = weight.device
        h1, h2 = (self._half(f32(a, dev), f32(b, dev), None if t is None else f32(t, dev)) for a, b, t in self.halves)
        if h1.shape != h2.shape:
            if h1.numel() != h2.numel():
                raise self.fail(
                    f"the two Hadamard factors differ in size: {shape_str(h1.shape)} vs {shape_str(h2.shape)}"
                )
            # One CP half (4-D) and one flattened half: bring both to the 4-D layout.
            if h2.dim() > h1.dim():
                h1 = h1.reshape(h2.shape)
            else:
                h2 = h2.reshape(h1.shape)
        return h1 * h2, None
