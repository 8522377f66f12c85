"""LoRA / LoCon: kohya `lora_up.weight` / `lora_down.weight`, PEFT aliases `lora_B.weight` / `lora_A.weight`.

    plain:   Δ = up · down                         up [out, r] or [out, r, 1, 1]
                                                   down [r, in] or [r, in, kh, kw]  ->  Δ [out, in(, kh, kw)]
    Tucker:  Δ[i, j, k, l] = Σ_n Σ_m mid[n, m, k, l] · up[i, n] · down[m, j]
             (`lora_mid.weight` [r, r, kh, kw]; up and down are then 1x1)
    dim = r = down.shape[0];  ΔW = multiplier · alpha / r · Δ (base.py does the scale and the rest)

dyn_dim keeps the first `dyn` ranks: up[:, :dyn], down[:dyn] and mid[:dyn, :dyn]. The scale keeps the full
rank, as A1111 does. A1111 ignores dyn_dim for Tucker files; here it truncates the core as well.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .base import AdapterModule, f32, shape_str, tucker


class LoRAModule(AdapterModule):
    kind = "lora"

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        kohya = "lora_up.weight" in tensors and "lora_down.weight" in tensors
        return kohya or ("lora_B.weight" in tensors and "lora_A.weight" in tensors)

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        super().__init__(key, tensors)
        kohya = "lora_up.weight" in self.tensors and "lora_down.weight" in self.tensors
        self.up = self._need("lora_up.weight" if kohya else "lora_B.weight")
        self.down = self._need("lora_down.weight" if kohya else "lora_A.weight")
        self.mid = self._get("lora_mid.weight")
        self._check_ndim("up", self.up, (2, 4))
        self._check_ndim("down", self.down, (2, 4))
        rank = int(self.down.shape[0])
        if self.up.flatten(1).shape[1] != rank:
            raise self._rank_error("up", self.up, "down", self.down)
        if self.mid is not None:
            self._check_ndim("lora_mid.weight", self.mid, (4,))
            one_by_one = all(t.shape[2:].numel() == 1 for t in (self.up, self.down))
            if tuple(self.mid.shape[:2]) != (rank, rank) or not one_by_one:
                raise self.fail(
                    f"Tucker LoRA needs mid [{rank}, {rank}, kh, kw] with 1x1 up/down, got mid "
                    f"{shape_str(self.mid.shape)}, up {shape_str(self.up.shape)}, down {shape_str(self.down.shape)}"
                )
        self.dim = rank

    def low_rank(self, shape: tuple[int, ...], multiplier: float, *, dyn_dim: int | None = None,
                 device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(U, D) in float32 with `delta(W, multiplier) == (U @ D).reshape(W.shape)` for a target of `shape`, or None
        when this module needs the general path (Tucker core, `bias` term, DoRA, inpainting padding). Lets the
        patcher merge several LoRAs into one weight with a single in-place `addmm`."""
        if self.mid is not None or self.bias_term is not None or self.dora_scale is not None:
            return None
        keep = self.dim if dyn_dim is None else dyn_dim
        if keep is None or keep < 0:
            return None
        down = self.down.flatten(1)
        if self.up.shape[0] != shape[0] or down.shape[1] * shape[0] != math.prod(shape):
            return None
        device = device or self.up.device
        up = f32(self.up, device).flatten(1)[:, :keep] * (self.calc_scale() * float(multiplier))
        return up, f32(down[:keep], device)

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if dyn_dim is not None and dyn_dim < 0:
            raise self.fail(f"dyn_dim must be >= 0, got {dyn_dim}")
        keep = self.dim if dyn_dim is None else dyn_dim
        up = f32(self.up, weight.device).flatten(1)[:, :keep]
        down = f32(self.down, weight.device)
        down_2d = down.flatten(1)[:keep]
        if self.mid is None:
            return (up @ down_2d).reshape(up.shape[0], *down.shape[1:]), None
        mid = f32(self.mid, weight.device)[:keep, :keep]
        return tucker(mid, up, down_2d), None
