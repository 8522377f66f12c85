"""A1111 hypernetwork files (``models/hypernetworks/*.pt``): loading and the MLP math.

A file is a ``torch.save``d dict: every ``int`` key is a context width mapping to a pair of MLP
state dicts (``[0]`` transforms the attention *key* input, ``[1]`` the *value* input), plus metadata
(``layer_structure``, ``activation_func``, ``is_layer_norm``, ``activate_output``, dropout keys,
``name``, ``step``, ``sd_checkpoint`` ...). Each MLP is rebuilt with exactly the reference layout
(Linear / activation / LayerNorm / Dropout slots in one ``Sequential`` called ``linear``) because the
state-dict indices depend on it, then loaded strictly.

Files are read with the restricted unpickler (:func:`modules.safe_load.torch_load_safe`), so a
malicious pickle is refused before any of it runs.

Dtype: each MLP computes in its own parameters' dtype (float32 after loading;
``HypernetworkPatch.set`` moves it to the UNet's device and dtype). The context is cast to that
dtype, transformed, and cast back, so a float32 hypernetwork on a float16 UNet computes in float32.

Hypernetworks are inference-only here: every module is in ``eval()`` mode (Dropout never fires)
with ``requires_grad`` off.
"""
from __future__ import annotations

import functools
import inspect
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from modules.models.safe_load import CheckpointLoadError, torch_load_safe

__all__ = [
    "HypernetworkLoadError",
    "HypernetworkModule",
    "Hypernetwork",
    "activation_classes",
    "parse_dropout_structure",
    "apply_hypernetworks",
    "weights_version",
]

DEFAULT_LAYER_STRUCTURE = (1.0, 2.0, 1.0)

# Very old files (before layer_structure existed) named their two Linear layers linear1/linear2.
_OLD_KEY_MAP = {
    "linear1.bias": "linear.0.bias",
    "linear1.weight": "linear.0.weight",
    "linear2.bias": "linear.1.bias",
    "linear2.weight": "linear.1.weight",
}


class HypernetworkLoadError(ValueError):
    """A hypernetwork file could not be loaded. ``path`` is the file, ``reason`` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot load hypernetwork {self.path}: {reason}")

    def __reduce__(self):  # keep it picklable (multiprocessing, caches)
        return (type(self), (self.path, self.reason))


@functools.cache
def _activation_table() -> Mapping[str, type[torch.nn.Module]]:
    import torch.nn.modules.activation as act_mod

    table: dict[str, type[torch.nn.Module]] = {
        "linear": torch.nn.Identity,
        "relu": torch.nn.ReLU,
        "leakyrelu": torch.nn.LeakyReLU,
        "elu": torch.nn.ELU,
        "swish": torch.nn.Hardswish,  # the reference maps "swish" to Hardswish, not SiLU
        "tanh": torch.nn.Tanh,
        "sigmoid": torch.nn.Sigmoid,
    }
    # Plus every class defined in torch.nn.modules.activation, by lower-cased class name.
    for cls_name, cls in inspect.getmembers(act_mod, inspect.isclass):
        if cls.__module__ == act_mod.__name__ and issubclass(cls, torch.nn.Module):
            table[cls_name.lower()] = cls
    table["swish"] = torch.nn.Hardswish
    table["linear"] = torch.nn.Identity
    return types.MappingProxyType(table)


def activation_classes() -> Mapping[str, type[torch.nn.Module]]:
    """Read-only ``{activation_func name: module class}`` as the reference accepts them."""
    return _activation_table()


def parse_dropout_structure(layer_structure: Sequence[float], use_dropout: bool,
                            last_layer_dropout: bool) -> list[float]:
    """The dropout structure the reference derives when a file stores none."""
    n = len(layer_structure)
    if not use_dropout:
        return [0.0] * n
    return [0.0] + [0.3] * (n - 3) + [0.3 if last_layer_dropout else 0.0] + [0.0]


class HypernetworkModule(torch.nn.Module):
    """One MLP: ``forward(x, multiplier) = x + linear(x) * multiplier``.

    ``linear`` is a ``Sequential`` laid out as the reference does, per step ``i``: Linear, then the
    activation (not for ``linear``/``None``, nor after the last Linear unless ``activate_output``),
    then LayerNorm if ``is_layer_norm``, then Dropout if ``dropout_structure[i+1] > 0``.
    Raises ``ValueError`` for an invalid structure or activation (the loader adds the file name).
    """

    def __init__(self, dim: int, *, layer_structure: Sequence[float] = DEFAULT_LAYER_STRUCTURE,
                 activation_func: str | None = None, is_layer_norm: bool = False,
                 activate_output: bool = False, dropout_structure: Sequence[float] | None = None):
        super().__init__()
        ls = list(layer_structure)
        if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1:
            raise ValueError(f"layer_structure must start and end with 1, got {ls}")
        ds = list(dropout_structure) if dropout_structure is not None else [0.0] * len(ls)
        if len(ds) < len(ls):
            raise ValueError(f"dropout_structure {ds} is shorter than layer_structure {ls}")
        act_cls = None
        if activation_func is not None and activation_func != "linear":
            act_cls = _activation_table().get(activation_func)
            if act_cls is None:
                raise ValueError(f"unknown activation_func {activation_func!r}")

        layers: list[torch.nn.Module] = []
        last = len(ls) - 2
        for i in range(len(ls) - 1):
            n_in, n_out = int(dim * ls[i]), int(dim * ls[i + 1])
            if n_in < 1 or n_out < 1:
                raise ValueError(f"layer_structure {ls} gives an empty layer at width {dim}")
            layers.append(torch.nn.Linear(n_in, n_out))
            if act_cls is not None and (i < last or activate_output):
                try:
                    layers.append(act_cls())
                except TypeError as e:  # e.g. Threshold, MultiheadAttention need arguments
                    raise ValueError(f"activation_func {activation_func!r} cannot be built without "
                                     f"arguments: {e}") from e
            if is_layer_norm:
                layers.append(torch.nn.LayerNorm(n_out))
            p = float(ds[i + 1])
            if p > 0:
                if p >= 1:
                    raise ValueError(f"dropout_structure values must be below 1, got {ds}")
                layers.append(torch.nn.Dropout(p=p))
        self.linear = torch.nn.Sequential(*layers)
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, multiplier: float = 1.0) -> torch.Tensor:
        if multiplier == 0:
            return x  # no effect at all, bit for bit (the reference adds linear(x) * 0)
        dtype = self.linear[0].weight.dtype
        h = x.to(dtype)
        return (h + self.linear(h) * multiplier).to(x.dtype)


def _fix_old_state_dict(sd: Mapping[str, Any]) -> dict[str, Any]:
    return {_OLD_KEY_MAP.get(k, k): v for k, v in sd.items()}


def _as_bool(path: Path, data: Mapping, key: str, default: bool) -> bool:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, (bool, int)):
        raise HypernetworkLoadError(path, f"{key!r} must be a boolean, got {value!r}")
    return bool(value)


def _as_structure(path: Path, data: Mapping, key: str, default: Sequence[float] | None) -> list[float] | None:
    value = data.get(key)
    if value is None:
        return None if default is None else list(default)
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise HypernetworkLoadError(path, f"{key!r} must be a list of numbers, got {value!r}")
    return [float(v) for v in value]


class Hypernetwork:
    """A loaded hypernetwork: ``layers[width] = (key MLP, value MLP)`` plus the file's metadata.

    ``stem`` is the file name without suffix (what ``<hypernet:NAME>`` tags look up); ``name`` is
    the file's own ``name`` entry when it has one (the reference lets it override the stem).
    """

    def __init__(self, *, name: str, filename: str,
                 layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]],
                 layer_structure: list[float], activation_func: str | None, is_layer_norm: bool,
                 activate_output: bool, dropout_structure: list[float], use_dropout: bool = False,
                 last_layer_dropout: bool = False, weight_initialization: str = "Normal", step: int = 0,
                 sd_checkpoint: str | None = None, sd_checkpoint_name: str | None = None,
                 optional_info: str | None = None):
        self.name = name
        self.filename = filename
        self.stem = Path(filename).stem if filename else name
        self.layers = layers
        self.layer_structure = layer_structure
        self.activation_func = activation_func
        self.is_layer_norm = is_layer_norm
        self.activate_output = activate_output
        self.dropout_structure = dropout_structure
        self.use_dropout = use_dropout
        self.last_layer_dropout = last_layer_dropout
        self.weight_initialization = weight_initialization
        self.step = step
        self.sd_checkpoint = sd_checkpoint
        self.sd_checkpoint_name = sd_checkpoint_name
        self.optional_info = optional_info
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        for k_mod, v_mod in layers.values():
            p = k_mod.linear[0].weight
            self.device, self.dtype = p.device, p.dtype
            break

    def __repr__(self) -> str:
        return f"Hypernetwork(name={self.name!r}, widths={self.widths()}, file={self.filename!r})"

    def widths(self) -> list[int]:
        return sorted(self.layers)

    def modules(self) -> list[HypernetworkModule]:
        return [m for pair in self.layers.values() for m in pair]

    def eval(self) -> "Hypernetwork":
        for m in self.modules():
            m.eval()
            m.requires_grad_(False)
        return self

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> "Hypernetwork":
        """Move every MLP (no-op when already there). Returns self."""
        device = self.device if device is None else torch.device(device)
        dtype = self.dtype if dtype is None else dtype
        if device == self.device and dtype == self.dtype:
            return self
        for m in self.modules():
            m.to(device=device, dtype=dtype)
        # Record what the parameters really report ("cuda" becomes "cuda:0").
        mods = self.modules()
        if mods:
            p = mods[0].linear[0].weight
            self.device, self.dtype = p.device, p.dtype
        else:
            self.device, self.dtype = device, dtype
        return self

    @classmethod
    def load(cls, path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> "Hypernetwork":
        p = Path(path)
        try:
            data = torch_load_safe(p, allow_unsafe_pickle=allow_unsafe_pickle, map_location="cpu")
        except CheckpointLoadError as e:
            raise HypernetworkLoadError(p, e.reason) from e
        return cls.from_dict(data, p)

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike) -> "Hypernetwork":
        """Build from the dict a file holds; ``path`` names the file in errors and sets ``stem``."""
        p = Path(path)
        if not isinstance(data, Mapping):
            raise HypernetworkLoadError(p, f"not a hypernetwork: the file holds a {type(data).__name__}, "
                                           "expected a dict")
        # Only keys whose type is exactly int are layers (bool is an int subclass: excluded).
        widths = [k for k in data if type(k) is int]
        if not widths:
            raise HypernetworkLoadError(p, "not a hypernetwork: the dict has no integer width keys")

        layer_structure = _as_structure(p, data, "layer_structure", DEFAULT_LAYER_STRUCTURE)
        if len(layer_structure) < 2 or layer_structure[0] != 1 or layer_structure[-1] != 1:
            raise HypernetworkLoadError(p, f"layer_structure must start and end with 1, got {layer_structure}")
        if any(v <= 0 for v in layer_structure):
            raise HypernetworkLoadError(p, f"layer_structure values must be positive, got {layer_structure}")

        activation_func = data.get("activation_func")
        if activation_func is not None:
            if not isinstance(activation_func, str):
                raise HypernetworkLoadError(p, f"activation_func must be a string, got {activation_func!r}")
            if activation_func != "linear" and activation_func not in _activation_table():
                raise HypernetworkLoadError(p, f"unknown activation_func {activation_func!r}")

        is_layer_norm = _as_bool(p, data, "is_layer_norm", False)
        activate_output = _as_bool(p, data, "activate_output", True)  # reference default on load
        last_layer_dropout = _as_bool(p, data, "last_layer_dropout", False)
        dropout_structure = _as_structure(p, data, "dropout_structure", None)
        use_dropout = bool(dropout_structure and any(dropout_structure)) or _as_bool(p, data, "use_dropout", False)
        if dropout_structure is None:
            dropout_structure = parse_dropout_structure(layer_structure, use_dropout, last_layer_dropout)
        if len(dropout_structure) < len(layer_structure):
            raise HypernetworkLoadError(
                p, f"dropout_structure {dropout_structure} is shorter than layer_structure {layer_structure}")
        if any(not 0 <= v < 1 for v in dropout_structure):
            raise HypernetworkLoadError(p, f"dropout_structure values must be in [0, 1), got {dropout_structure}")

        layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = {}
        for width in sorted(widths):
            if width <= 0:
                raise HypernetworkLoadError(p, f"invalid layer width {width}")
            pair = data[width]
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(
                    isinstance(sd, Mapping) for sd in pair):
                raise HypernetworkLoadError(
                    p, f"layer {width}: expected a pair (key state dict, value state dict), "
                       f"got {type(pair).__name__}")
            mods = []
            for which, sd in zip(("key", "value"), pair):
                try:
                    mod = HypernetworkModule(
                        width, layer_structure=layer_structure, activation_func=activation_func,
                        is_layer_norm=is_layer_norm, activate_output=activate_output,
                        dropout_structure=dropout_structure)
                except ValueError as e:
                    raise HypernetworkLoadError(p, f"layer {width}: {e}") from e
                try:
                    mod.load_state_dict(_fix_old_state_dict(sd), strict=True)
                except Exception as e:  # RuntimeError for missing/unexpected keys or shapes
                    raise HypernetworkLoadError(
                        p, f"layer {width} ({which} MLP) does not match layer_structure={layer_structure}, "
                           f"activation_func={activation_func!r}, is_layer_norm={is_layer_norm}, "
                           f"activate_output={activate_output}: {e}") from e
                mods.append(mod)
            layers[width] = (mods[0], mods[1])

        file_name = data.get("name")
        step = data.get("step", 0)
        return cls(
            name=file_name if isinstance(file_name, str) and file_name else p.stem,
            filename=str(p), layers=layers, layer_structure=layer_structure,
            activation_func=activation_func, is_layer_norm=is_layer_norm, activate_output=activate_output,
            dropout_structure=dropout_structure, use_dropout=use_dropout,
            last_layer_dropout=last_layer_dropout,
            weight_initialization=str(data.get("weight_initialization") or "Normal"),
            step=step if isinstance(step, int) and not isinstance(step, bool) else 0,
            sd_checkpoint=_opt_str(data.get("sd_checkpoint")),
            sd_checkpoint_name=_opt_str(data.get("sd_checkpoint_name")),
            optional_info=_opt_str(data.get("optional_info")),
        ).eval()


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def weights_version(active: Sequence[tuple[Hypernetwork, float]]) -> tuple[int, ...]:
    """Changes whenever a parameter of these hypernetworks is written (a training step, a load into them)."""
    return tuple(p._version for hypernetwork, _ in active for module in hypernetwork.modules()
                 for p in module.parameters())


def apply_hypernetworks(active: Sequence[tuple[Hypernetwork, float]],
                        context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(context_k, context_v)``: each hypernetwork in order transforms the key and the value
    context separately, with its layer for ``context.shape[-1]``; one without that width leaves
    them unchanged. With none active both are ``context`` itself."""
    context_k = context_v = context
    width = context.shape[-1]
    for hypernetwork, multiplier in active:
        pair = hypernetwork.layers.get(width)
        if pair is None:
            continue
        context_k = pair[0](context_k, multiplier)
        context_v = pair[1](context_v, multiplier)
    return context_k, context_v
