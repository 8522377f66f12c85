"""Shared base of the LoRA/LyCORIS weight adapters: scale, `bias` key, reshape/padding, DoRA, multiplier.

The tensors under one module key of a file (kohya naming, split at the first dot) make one `AdapterModule`.
`delta(weight, multiplier)` returns what to ADD to the target's current weight W (and bias). The order is
A1111's `finalize_updown` (spec §3.5):

    Δ  = updown(W)                 type-specific (IA3, OFT and GLoRA read W, the others do not)
    Δ += bias key                  LyCORIS "bias": a term with as many elements as Δ
    Δ  = Δ reshaped to W's shape   missing input channels are zero-padded (9-channel inpainting conv_in)
    Δ *= calc_scale()              "scale" key, else alpha / dim, else 1
    DoRA, when dora_scale exists:  W' = (W + Δ) · dora_scale / ‖W + Δ‖,  Δ = W' − W
    Δ *= multiplier                after DoRA, as A1111: m scales the whole re-normalised change, so m = 0
                                   gives exactly zero and m = 1 gives exactly W'
    Δbias = (diff_b | b_norm) · multiplier   the extra bias is never scaled by alpha / dim

DoRA norm axis, read from dora_scale's shape. LyCORIS stores [1, in, 1, ...] by default: one norm per input
column, over every axis but 1 (this is also the only form A1111 1.10 computes). With LyCORIS `wd_on_out` it
stores [out, 1, ...]: one norm per output row, over every axis but 0. PEFT-style 1-D magnitudes [out] are
per output row. A small epsilon keeps an all-zero row or column finite, as LyCORIS does.

Everything is computed in float32 on W's device; the file tensors are cast on each call and W is never
written to.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch

_DORA_EPS = torch.finfo(torch.float32).eps


class AdapterError(ValueError):
    """A module's tensors cannot be used; the message names the module key and the reason."""


def shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.detach().to(device=device, dtype=torch.float32)


def tucker(core: torch.Tensor, up: torch.Tensor, down: torch.Tensor) -> torch.Tensor:
    """Tucker/CP rebuild of a conv delta: Δ[i, j, ...] = Σ_n Σ_m core[n, m, ...] · up[i, n] · down[m, j]."""
    return torch.einsum("nm...,in,mj->ij...", core, up, down)


def fit_to_target(key: str, delta: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Reshape `delta` to the target shape; zero-pad it on the input axis when the target has more inputs."""
    shape = tuple(int(s) for s in shape)
    if tuple(delta.shape) == shape:
        return delta
    same_rows = delta.dim() > 0 and len(shape) > 0 and delta.shape[0] == shape[0]
    # Same element count and the same output axis: a flattened conv kernel or a 1x1 conv vs a Linear delta.
    if same_rows and delta.numel() == math.prod(shape):
        return delta.reshape(shape)
    if same_rows and len(shape) >= 2:
        out, n_in, *kernel = shape
        per_input = out * math.prod(kernel)
        kernel_ok = delta.dim() != len(shape) or tuple(delta.shape[2:]) == tuple(kernel)
        if kernel_ok and delta.numel() % per_input == 0 and 0 < delta.numel() // per_input < n_in:
            narrow = delta.reshape(out, delta.numel() // per_input, *kernel)
            padded = delta.new_zeros(shape)
            padded[:, : narrow.shape[1]] = narrow
            return padded
    raise AdapterError(
        f"{key}: delta does not fit the target weight: expected shape {shape_str(shape)}, "
        f"got {shape_str(delta.shape)}"
    )


def dora_axis(key: str, dora_scale: torch.Tensor, shape: Sequence[int]) -> int:
    """0 when dora_scale holds one magnitude per output row, 1 when one per input column."""
    out, n_in = int(shape[0]), int(shape[1])
    s = tuple(int(x) for x in dora_scale.shape)
    if len(s) == 1 and s[0] == out:
        return 0
    if len(s) >= 2 and all(x == 1 for x in s[2:]):
        if s[0] == out and s[1] == 1:
            return 0
        if s[0] == 1 and s[1] == n_in:
            return 1
    raise AdapterError(
        f"{key}: dora_scale of shape {shape_str(s)} fits neither the output axis ([{out}, 1, ...]) "
        f"nor the input axis ([1, {n_in}, ...]) of the target weight {shape_str(shape)}"
    )


def apply_dora(key: str, weight: torch.Tensor, delta: torch.Tensor, dora_scale: torch.Tensor) -> torch.Tensor:
    """Δ' = (W + Δ) · dora_scale / ‖W + Δ‖ − W, the norm taken per output row or per input column."""
    if weight.dim() < 2:
        raise AdapterError(f"{key}: dora_scale given for a {weight.dim()}-D weight; DoRA needs output and input axes")
    axis = dora_axis(key, dora_scale, weight.shape)
    merged = weight + delta
    other_axes = tuple(d for d in range(merged.dim()) if d != axis)
    norm = torch.linalg.vector_norm(merged, dim=other_axes, keepdim=True)
    return merged * (dora_scale.reshape(norm.shape) / (norm + _DORA_EPS)) - weight


class AdapterModule:
    """One module of a LoRA/LyCORIS file. Subclasses set `kind`, `matches` and `updown`."""

    kind: ClassVar[str] = ""

    def __init__(self, key: str, tensors: Mapping[str, torch.Tensor]):
        self.key = key
        self.tensors: dict[str, torch.Tensor] = dict(tensors)
        self._used: set[str] = set()
        self.dim: int | None = None
        self.alpha = self._scalar("alpha")
        self.scale = self._scalar("scale")
        self.bias_term = self._get("bias")
        self.dora_scale = self._get("dora_scale")

    @classmethod
    def matches(cls, tensors: Mapping[str, torch.Tensor]) -> bool:
        raise NotImplementedError

    # -- reading the file's tensors ------------------------------------------------------------------
    def fail(self, reason: str) -> AdapterError:
        return AdapterError(f"{self.key}: {reason}")

    def _get(self, name: str) -> torch.Tensor | None:
        t = self.tensors.get(name)
        if t is not None:
            self._used.add(name)
        return t

    def _need(self, name: str) -> torch.Tensor:
        t = self._get(name)
        if t is None:
            raise self.fail(f"missing tensor {name!r} (has {sorted(self.tensors)})")
        return t

    def _scalar(self, name: str) -> float | None:
        t = self._get(name)
        if t is None:
            return None
        t = torch.as_tensor(t)
        if t.numel() != 1:
            raise self.fail(f"{name!r} must be a single number, got shape {shape_str(t.shape)}")
        return float(t.reshape(()).item())

    def _rank_error(self, name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> AdapterError:
        return self.fail(f"{name_a} {shape_str(a.shape)} and {name_b} {shape_str(b.shape)} disagree on the rank")

    def _check_ndim(self, name: str, t: torch.Tensor, allowed: tuple[int, ...]) -> None:
        if t.dim() not in allowed:
            raise self.fail(f"{name!r} must have {' or '.join(map(str, allowed))} dims, got {shape_str(t.shape)}")

    @property
    def unused_params(self) -> tuple[str, ...]:
        """Param names this type did not read (for the loader's 'keys not used' report)."""
        return tuple(sorted(n for n in self.tensors if n not in self._used))

    # -- maths -------------------------------------------------------------------------------------
    def calc_scale(self) -> float:
        if self.scale is not None:
            return self.scale
        if self.alpha is not None and self.dim:
            return self.alpha / self.dim
        return 1.0

    def updown(self, weight: torch.Tensor, dyn_dim: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Type-specific (raw Δ in its natural shape, unscaled extra bias), float32 on weight.device."""
        raise NotImplementedError

    def delta(
        self,
        weight: torch.Tensor,
        multiplier: float,
        *,
        dyn_dim: int | None = None,
        bias: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        with torch.no_grad():
            w = weight.detach().to(torch.float32)
            raw, extra_bias = self.updown(w, dyn_dim)
            if self.bias_term is not None:
                term = f32(self.bias_term, w.device)
                if term.numel() != raw.numel():
                    raise self.fail(
                        f"'bias' has {term.numel()} elements but the delta {shape_str(raw.shape)} has {raw.numel()}"
                    )
                raw = raw + term.reshape(raw.shape)
            d = fit_to_target(self.key, raw, w.shape) * self.calc_scale()
            if self.dora_scale is not None:
                d = apply_dora(self.key, w, d, f32(self.dora_scale, w.device))
            d = d * float(multiplier)
            return d, self._bias_delta(extra_bias, bias, float(multiplier))

    def _bias_delta(
        self, extra: torch.Tensor | None, bias: torch.Tensor | None, multiplier: float
    ) -> torch.Tensor | None:
        if extra is None:
            return None
        extra = extra * multiplier
        if bias is None:
            return extra  # the target has no bias yet; the patcher decides whether to create one (A1111 does)
        if extra.numel() != bias.numel():
            raise self.fail(
                f"bias delta does not fit the target bias: expected shape {shape_str(bias.shape)}, "
                f"got {shape_str(extra.shape)}"
            )
        return extra.reshape(bias.shape)

    def tensors_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values() if isinstance(t, torch.Tensor))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, dim={self.dim}, params={sorted(self.tensors)})"
