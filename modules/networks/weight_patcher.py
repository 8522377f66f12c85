"""Merge adapter deltas into module weights in place, and put the originals back bit for bit.

The patcher keeps, per patched module, a copy of its original weight and bias and a *signature* of what is merged
into it now. `apply(wanted)` compares signatures module by module: a module whose wanted contributions did not
change is not touched; any other module is first restored from its copy, then gets the new deltas added. A module
no longer wanted is restored. Copies are kept after a restore (as A1111 does): allocating them again is the
largest cost of turning LoRAs on, and they are needed again as soon as a LoRA is. `release()` frees the copies
of modules that hold no delta.

Sampling then runs on plain weights (no per-step cost). If computing a delta fails half way, every module
touched by that call is rolled back to its original and the error propagates: nothing is left half-applied.

Modules offloaded by accelerate's sequential offload keep their real tensors in the hook's weights map (the
parameters themselves are on the meta device); those tensors are patched instead.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Hashable, Protocol, Sequence

import torch

log = logging.getLogger(__name__)


class DeltaSource(Protocol):
    def delta(self, weight: torch.Tensor, multiplier: float, *, dyn_dim: int | None = None,
              bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]: ...


@dataclass(frozen=True)
class Contribution:
    """One adapter's part in one module: `key` identifies the adapter file version (so the signature changes when
    the file does), `source` computes the delta."""
    key: Hashable
    source: DeltaSource
    multiplier: float
    dyn_dim: int | None = None

    @property
    def signature(self) -> tuple:
        return (self.key, self.multiplier, self.dyn_dim)


@dataclass
class _Backup:
    weight: torch.Tensor
    bias: torch.Tensor | None
    signature: tuple


def _tensors(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The tensors that really hold the module's weight and bias (see module docstring about offload)."""
    weight = module.weight
    bias = getattr(module, "bias", None)
    if weight.device.type == "meta":
        hook = getattr(module, "_hf_hook", None)
        weights_map = getattr(hook, "weights_map", None)
        if weights_map is None:
            raise RuntimeError(f"{type(module).__name__} has its weight on the meta device and no offload weights map")
        weight = weights_map["weight"]
        bias = weights_map["bias"] if bias is not None else None
    return weight.data, (bias.data if bias is not None else None)


class WeightPatcher:
    def __init__(self, backup_device: torch.device | str | None = None):
        """`backup_device`: where original copies live; None keeps them beside the weights (fastest restore),
        "cpu" saves accelerator memory (A1111's choice) at the cost of a host-to-device copy per restore."""
        self.backup_device = torch.device(backup_device) if backup_device is not None else None
        self._backups: dict[torch.nn.Module, _Backup] = {}

    @property
    def patched_modules(self) -> list[torch.nn.Module]:
        return [m for m, b in self._backups.items() if b.signature]

    @property
    def backup_bytes(self) -> int:
        return sum(b.weight.numel() * b.weight.element_size()
                   + (b.bias.numel() * b.bias.element_size() if b.bias is not None else 0) for b in self._backups.values())

    def signature(self, module: torch.nn.Module) -> tuple:
        backup = self._backups.get(module)
        return backup.signature if backup else ()

    @torch.no_grad()
    def apply(self, wanted: dict[torch.nn.Module, Sequence[Contribution]]) -> int:
        """Make every module hold its original weights plus exactly the `wanted` contributions (modules not in
        `wanted` get none). Returns how many modules were rewritten."""
        touched: list[torch.nn.Module] = []
        try:
            for module in [m for m, b in self._backups.items() if b.signature and m not in wanted]:
                self._restore(module)
                touched.append(module)
            for module, contributions in wanted.items():
                signature = tuple(c.signature for c in contributions)
                if self.signature(module) == signature:
                    continue
                touched.append(module)
                if not contributions:
                    self._restore(module)
                    continue
                self._patch(module, contributions, signature)
        except BaseException:
            self._rollback(touched)
            raise
        return len(touched)

    def restore_all(self) -> None:
        """Put every original back (before the model is saved, merged or handed to code that expects it clean)."""
        self.apply({})

    def release(self) -> None:
        """Free the copies of modules that currently hold their original weights."""
        for module in [m for m, b in self._backups.items() if not b.signature]:
            del self._backups[module]

    def forget(self) -> None:
        """Drop all copies without restoring: the model they belong to was replaced."""
        self._backups.clear()

    def _patch(self, module: torch.nn.Module, contributions: Sequence[Contribution], signature: tuple) -> None:
        weight, bias = _tensors(module)
        backup = self._backups.get(module)
        if backup is None:
            device = self.backup_device or weight.device
            backup = _Backup(
                weight=weight.detach().to(device, copy=True),
                bias=bias.detach().to(device, copy=True) if bias is not None else None,
                signature=(),
            )
            self._backups[module] = backup
        else:
            self._restore(module)
        # Accumulate in float32 and round once: the result does not depend on how many adapters are merged.
        new_weight = weight.float()  # for a float32 weight this is the weight itself, patched in place
        new_bias = bias.float() if bias is not None else None
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # low-rank factors still to be added
        for c in contributions:
            factors = _low_rank(c, tuple(weight.shape), new_weight.device)
            if factors is not None:
                pending.append(factors)
                continue
            _add_low_rank(new_weight, pending)
            # Each adapter sees the weight as patched by the ones before it (matters for IA3, OFT, GLoRA, DoRA).
            d_weight, d_bias = c.source.delta(new_weight, c.multiplier, dyn_dim=c.dyn_dim, bias=new_bias)
            new_weight = new_weight + d_weight.to(new_weight.device, torch.float32)
            if d_bias is not None:
                if new_bias is None:
                    log.debug("bias delta for a module without bias (%s); ignored", type(module).__name__)
                else:
                    new_bias = new_bias + d_bias.to(new_bias.device, torch.float32)
        _add_low_rank(new_weight, pending)
        if new_weight.data_ptr() != weight.data_ptr():
            weight.copy_(new_weight)
        if bias is not None and new_bias is not None:
            bias.copy_(new_bias)
        backup.signature = signature

    def _restore(self, module: torch.nn.Module) -> None:
        backup = self._backups[module]
        if not backup.signature:
            return  # already the original
        weight, bias = _tensors(module)
        weight.copy_(backup.weight)
        if bias is not None and backup.bias is not None:
            bias.copy_(backup.bias)
        backup.signature = ()

    def _rollback(self, modules: list[torch.nn.Module]) -> None:
        for module in modules:
            if module in self._backups:
                self._backups[module].signature = (None,)  # unknown state: force the copy back
                try:
                    self._restore(module)
                except Exception:  # pragma: no cover - restoring a copy cannot fail short of OOM
                    log.exception("could not restore %s", type(module).__name__)



def _low_rank(c: Contribution, shape: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    factors = getattr(c.source, "low_rank", None)
    return factors(shape, c.multiplier, dyn_dim=c.dyn_dim, device=device) if factors is not None else None


def _add_low_rank(weight: torch.Tensor, pending: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """W += Σ Uᵢ·Dᵢ as one matrix product of the concatenated factors, written in place."""
    if not pending:
        return
    ups = torch.cat([u for u, _ in pending], dim=1)
    downs = torch.cat([d for _, d in pending], dim=0)
    if weight.is_contiguous():
        weight.view(weight.shape[0], -1).addmm_(ups, downs)
    else:
        weight.add_((ups @ downs).reshape(weight.shape))
    pending.clear()
