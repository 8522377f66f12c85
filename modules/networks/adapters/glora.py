"""GLoRA (LyCORIS): Δ = W·A + B, a low-rank map of the current weight plus a low-rank term.

Two file layouts exist (all tensors read as 2-D [rows, rest]; W as [out, in] or [out, in, kh, kw]):

    old LyCORIS (the spec's formula, A1111): a1 [r, in], a2 [in, r], b1 [r, in·k], b2 [out, r]
        Δ = b2 · b1 + (W · a2) · a1
    current LyCORIS:                         a1 [in, r], a2 [r, in], b1 [out, r], b2 [r, in·k]
        Δ = b1 · b2 + (W · a1) · a2
    where W · X multiplies W's input axis: (W·X)[o, j, ...] = Σ_i W[o, i, ...] · X[i, j].

The layout is the one whose shapes compose; when both do (square, full-rank case) the old one is used, as A1111.
dim = r, so the scale is alpha / r as LyCORIS trains and merges it (A1111 leaves dim unset and ignores alpha).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch

from .base import AdapterModule, f32, shape_str

_NAMES = ("a1.weight", "a2.weight", "b1.weight", "b2.weight")


def _on_input(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oi...,ij->oj...", weight, x)


class GLoRAModule(AdapterModule):
    kind = "glora"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        return all(n in tensors for n in _NAMES)

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        self.a1, self.a2, self.b1, self.b2 = (self._need(n) for n in _NAMES)
        a1, a2, b1, b2 = (t.flatten(1).shape for t in (self.a1, self.a2, self.b1, self.b2))
        self.old_ok = a1[0] == a2[1] == b1[0] == b2[1]
        self.new_ok = a1[1] == a2[0] == b1[1] == b2[0]
        if not (self.old_ok or self.new_ok):
            raise self.fail(
                "a1/a2/b1/b2 shapes "
                + ", ".join(shape_str(t.shape) for t in (self.a1, self.a2, self.b1, self.b2))
                + " fit no GLoRA layout"
            )
        self.dim = int(a1[0] if self.old_ok else a1[1])

    def _layout_fits(self, old: bool, weight: torch.Tensor) -> bool:
        out, n_in = weight.shape[0], weight.shape[1]
        per_in = weight[0].numel()  # in·kh·kw
        a1, a2, b1, b2 = (t.flatten(1).shape for t in (self.a1, self.a2, self.b1, self.b2))
        if old:
            return self.old_ok and a2[0] == n_in and a1[1] == n_in and b2[0] == out and b1[1] == per_in
        return self.new_ok and a1[0] == n_in and a2[1] == n_in and b1[0] == out and b2[1] == per_in

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if weight.dim() < 2:
            raise self.fail(f"GLoRA needs a Linear or Conv weight, got shape {shape_str(weight.shape)}")
        dev = weight.device
        a1, a2, b1, b2 = (f32(t, dev).flatten(1) for t in (self.a1, self.a2, self.b1, self.b2))
        if self._layout_fits(True, weight):
            w_a = _on_input(_on_input(weight, a2), a1)
            b = b2 @ b1
        elif self._layout_fits(False, weight):
            w_a = _on_input(_on_input(weight, a1), a2)
            b = b1 @ b2
        else:
            raise self.fail(
                f"a1/a2/b1/b2 shapes {', '.join(shape_str(t.shape) for t in (self.a1, self.a2, self.b1, self.b2))} "
                f"do not fit the target weight {shape_str(weight.shape)}"
            )
        return w_a + b.reshape(weight.shape), None
