"""Test-side writer of A1111 hypernetwork ``.pt`` files (shared helper: import it from any test).

Files are laid out the way the reference's ``Hypernetwork.save()`` writes them (spec §1.1): every
int width maps to ``(k_state_dict, v_state_dict)`` taken from ``Module.state_dict()`` of an MLP
built here, plus the metadata keys. The MLPs are built by this file's own construction of the
reference layout (spec §1.2), never by the loader under test. Weights are random and large enough
that a hypernetwork visibly changes its input (the reference's own init, std 0.01, barely does).

``write_old_hypernetwork`` writes the oldest layout: ``linear1``/``linear2`` keys and no metadata.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_sequential", "write_hypernetwork", "write_old_hypernetwork", "default_dropout_structure"]

# The writer's own name -> class table (a subset is enough for tests; spec §1.2).
_ACTIVATIONS = {
    "relu": torch.nn.ReLU, "leakyrelu": torch.nn.LeakyReLU, "elu": torch.nn.ELU, "swish": torch.nn.Hardswish,
    "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU, "mish": torch.nn.Mish,
    "softsign": torch.nn.Softsign, "silu": torch.nn.SiLU, "softplus": torch.nn.Softplus,
    "hardswish": torch.nn.Hardswish, "celu": torch.nn.CELU, "selu": torch.nn.SELU,
}


def default_dropout_structure(layer_structure: Sequence[float], use_dropout: bool, last_layer_dropout: bool) -> list:
    n = len(layer_structure)
    if not use_dropout:
        return [0] * n
    return [0] + [0.3] * (n - 3) + [0.3 if last_layer_dropout else 0] + [0]


class _MLP(torch.nn.Module):
    # Only so that state_dict() keys read "linear.<i>.*" exactly as the reference's module does.
    def __init__(self, seq: torch.nn.Sequential):
        super().__init__()
        self.linear = seq


def build_sequential(dim: int, layer_structure: Sequence[float], activation_func: str | None,
                     is_layer_norm: bool, activate_output: bool, dropout_structure: Sequence[float],
                     generator: torch.Generator, scale: float = 1.0) -> torch.nn.Sequential:
    """The reference layout, with random weights (Linear ~ N(0, scale/sqrt(fan_in)), LayerNorm
    weight ~ 1 + N(0, 0.2), biases ~ N(0, 0.1))."""
    items: list[torch.nn.Module] = []
    steps = len(layer_structure) - 1
    for i in range(steps):
        fan_in, fan_out = int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])
        lin = torch.nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(fan_out, fan_in, generator=generator) * scale / fan_in ** 0.5)
            lin.bias.copy_(torch.randn(fan_out, generator=generator) * 0.1)
        items.append(lin)
        is_last = i == steps - 1
        if activation_func not in (None, "linear") and (activate_output or not is_last):
            items.append(_ACTIVATIONS[activation_func]())
        if is_layer_norm:
            ln = torch.nn.LayerNorm(fan_out)
            with torch.no_grad():
                ln.weight.copy_(1 + torch.randn(fan_out, generator=generator) * 0.2)
                ln.bias.copy_(torch.randn(fan_out, generator=generator) * 0.1)
            items.append(ln)
        if dropout_structure[i + 1] > 0:
            items.append(torch.nn.Dropout(p=dropout_structure[i + 1]))
    return torch.nn.Sequential(*items)


def write_hypernetwork(path: str | Path, widths: Iterable[int] = (32,), *,
                       layer_structure: Sequence[float] = (1, 2, 1), activation_func: str | None = None,
                       is_layer_norm: bool = False, activate_output: bool = True, use_dropout: bool = False,
                       dropout_structure: Sequence[float] | None = None, last_layer_dropout: bool = False,
                       weight_initialization: str = "Normal", name: str | None = None, step: int = 100,
                       sd_checkpoint: str | None = "abcdef0123", sd_checkpoint_name: str | None = "tiny",
                       optional_info: str | None = None, omit: Iterable[str] = (), as_list: bool = False,
                       seed: int = 0, scale: float = 1.0, dtype: torch.dtype = torch.float32) -> dict[Any, Any]:
    """Save a hypernetwork file as the reference does; returns the saved dict.

    ``omit`` drops metadata keys (to write files from versions that lacked them); when
    ``activate_output`` is omitted the MLPs are built with an activated output (the loader's
    default). ``as_list`` stores each width's pair as a list instead of a tuple."""
    omit = set(omit)
    if dropout_structure is None:
        dropout_structure = default_dropout_structure(layer_structure, use_dropout, last_layer_dropout)
    built_activate_output = True if "activate_output" in omit else activate_output
    g = torch.Generator().manual_seed(seed)
    data: dict[Any, Any] = {}
    for w in widths:
        pair = tuple(
            _MLP(build_sequential(w, layer_structure, activation_func, is_layer_norm, built_activate_output,
                                  dropout_structure, g, scale)).to(dtype).state_dict()
            for _ in range(2))
        data[int(w)] = list(pair) if as_list else pair
    meta = {
        "step": step, "name": name if name is not None else Path(path).stem,
        "layer_structure": list(layer_structure), "activation_func": activation_func,
        "is_layer_norm": is_layer_norm, "weight_initialization": weight_initialization,
        "sd_checkpoint": sd_checkpoint, "sd_checkpoint_name": sd_checkpoint_name,
        "activate_output": activate_output, "use_dropout": use_dropout,
        "dropout_structure": list(dropout_structure), "last_layer_dropout": last_layer_dropout,
        "optional_info": optional_info if optional_info else None,
    }
    data.update({k: v for k, v in meta.items() if k not in omit})
    torch.save(data, str(path))
    return data


def write_old_hypernetwork(path: str | Path, widths: Iterable[int] = (32,), *, seed: int = 0,
                           scale: float = 1.0) -> dict[Any, Any]:
    """The oldest layout: per width two state dicts with ``linear1``/``linear2`` keys (a
    ``[1, 2, 1]`` MLP, no activation), and no metadata keys at all."""
    g = torch.Generator().manual_seed(seed)
    data: dict[Any, Any] = {}
    for w in widths:
        pair = []
        for _ in range(2):
            sd = {}
            for key, (n_out, n_in) in (("linear1", (2 * w, w)), ("linear2", (w, 2 * w))):
                sd[f"{key}.weight"] = torch.randn(n_out, n_in, generator=g) * scale / n_in ** 0.5
                sd[f"{key}.bias"] = torch.randn(n_out, generator=g) * 0.1
            pair.append(sd)
        data[int(w)] = tuple(pair)
    torch.save(data, str(path))
    return data
