"""Affine hypernetworks folded into the attention projections they feed.

A hypernetwork MLP with no activation, no LayerNorm and no active dropout (A1111's default: layer structure
``1, 2, 1`` with activation ``linear``, and every NovelAI-era file) is one affine map of its input:
``module(x, m) = x + m·(W x + b) = A x + c``. Its output only goes into ``to_k`` (or ``to_v``), so
``to_k(A x + c) = (Wk A) x + (Wk c + bk)``: one Linear of the projection's own size. Folded that way the
hypernetwork costs nothing per step in self-attention, where its input (the image features) changes at every
call and cannot be cached. Non-affine files keep the step-by-step computation.

The folds are computed in float32 from the current weights and cast to the projection's dtype; they are keyed by
the weights' identities and versions, so a LoRA merged into ``to_k`` or a trained hypernetwork refolds.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from modules.networks.hypernetwork import Hypernetwork, HypernetworkModule, weights_version

__all__ = ["FoldedProjections", "affine_map", "chain_affine_map", "fold_into_linear"]

Affine = tuple[torch.Tensor, torch.Tensor]  # (A, c): x -> x @ A.T + c


def affine_map(module: HypernetworkModule, multiplier: float) -> Affine | None:
    """``(A, c)`` in float32 with ``module(x, multiplier) == x @ A.T + c``; None when the MLP is not affine."""
    weight = bias = None
    for layer in module.linear:
        if isinstance(layer, torch.nn.Linear):
            w = layer.weight.detach().float()
            b = layer.bias.detach().float() if layer.bias is not None else w.new_zeros(w.shape[0])
            weight, bias = (w, b) if weight is None else (w @ weight, w @ bias + b)
        elif isinstance(layer, torch.nn.Identity) or (isinstance(layer, torch.nn.Dropout) and not layer.training):
            continue
        else:  # an activation, a LayerNorm, dropout while training
            return None
    assert weight is not None  # HypernetworkModule always has a Linear
    eye = torch.eye(weight.shape[1], dtype=torch.float32, device=weight.device)
    if multiplier == 0:
        return eye, weight.new_zeros(weight.shape[1])
    return eye + multiplier * weight, multiplier * bias


def chain_affine_map(active: Sequence[tuple[Hypernetwork, float]], width: int, which: int) -> Affine | None:
    """The affine map of every active hypernetwork's ``which`` (0 = key, 1 = value) MLP for ``width``, applied in
    order; None when one of them is not affine, or when none changes that width (nothing to fold: the stock
    projection is exact, bit for bit, at multiplier 0)."""
    total: Affine | None = None
    for hypernetwork, multiplier in active:
        pair = hypernetwork.layers.get(width)
        if pair is None or multiplier == 0:
            continue
        step = affine_map(pair[which], multiplier)
        if step is None:
            return None
        total = step if total is None else (step[0] @ total[0], step[0] @ total[1] + step[1])
    return total


def fold_into_linear(linear: torch.nn.Linear, affine: Affine) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weight, bias)`` with ``F.linear(x, weight, bias) == linear(x @ A.T + c)``, in the Linear's dtype."""
    a, c = affine
    w = linear.weight.detach().float()
    bias = w @ c.to(w.device)
    if linear.bias is not None:
        bias = bias + linear.bias.detach().float()
    return (w @ a.to(w.device)).to(linear.weight.dtype), bias.to(linear.weight.dtype)


def _weights_key(linear: torch.nn.Linear) -> tuple:
    params = [linear.weight] + ([linear.bias] if linear.bias is not None else [])
    return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)


class FoldedProjections:
    """Per attention module: its ``to_k``/``to_v`` with the active hypernetworks folded in, or None.

    One per hypernetwork processor (so per set of hypernetworks and multipliers), kept across generations and
    freed with the processor. ``get`` refolds when the projections or the hypernetworks' weights changed since
    (a LoRA merged in, a training step)."""

    def __init__(self, active: Sequence[tuple[Hypernetwork, float]]):
        self.active = tuple(active)
        self._maps: dict[int, tuple[Affine | None, Affine | None]] = {}  # width -> (key map, value map)
        self._maps_version: tuple[int, ...] = ()
        self._folds: dict[int, tuple[tuple, tuple[torch.Tensor, ...] | None]] = {}  # id(attn) -> (key, folds)

    def _maps_for(self, width: int, version: tuple[int, ...]) -> tuple[Affine | None, Affine | None]:
        if version != self._maps_version:
            self._maps.clear()
            self._maps_version = version
        if width not in self._maps:
            self._maps[width] = (chain_affine_map(self.active, width, 0), chain_affine_map(self.active, width, 1))
        return self._maps[width]

    def get(self, attn: torch.nn.Module, context: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """``(key weight, key bias, value weight, value bias)`` for ``attn`` fed ``context``, or None when it
        cannot be folded: a non-affine hypernetwork, no layer of the context's width, projections that are not
        plain Linears (an unmerged PEFT LoRA) or whose weights are not on the context's device (``--lowvram``
        keeps them on the meta device and brings them in only when the Linear itself runs)."""
        to_k, to_v = attn.to_k, attn.to_v
        if type(to_k) is not torch.nn.Linear or type(to_v) is not torch.nn.Linear:
            return None
        if to_k.weight.device != context.device or to_v.weight.device != context.device:
            return None
        width = context.shape[-1]
        version = weights_version(self.active)
        key = (width, version, _weights_key(to_k), _weights_key(to_v))
        cached = self._folds.get(id(attn))
        if cached is not None and cached[0] == key:
            return cached[1]
        map_k, map_v = self._maps_for(width, version)
        folds = None
        if map_k is not None and map_v is not None:
            folds = (*fold_into_linear(to_k, map_k), *fold_into_linear(to_v, map_v))
        self._folds[id(attn)] = (key, folds)
        return folds
