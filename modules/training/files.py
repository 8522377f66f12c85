"""New embeddings and hypernetworks, and saving them in A1111's file layouts (spec §1.1, §2.2).

Embedding ``NAME.pt``: ``{"string_to_token": {"*": 265}, "string_to_param": {"*": [n, width]}, "name", "step",
"sd_checkpoint", "sd_checkpoint_name"}``. Hypernetwork ``NAME.pt``: ``{width: [key MLP state dict, value MLP
state dict], ...}`` plus its structure keys, ``name``, ``step``, ``sd_checkpoint``, ``sd_checkpoint_name``.
The optimizer state goes to ``NAME.pt.optim`` beside the file (A1111 appends ``.optim`` to the file name),
with a ``hash`` that ties it to the weights it belongs to; resuming ignores a sidecar whose hash differs.
Every file is written atomically.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from modules.core.fileio import atomic_write_bytes
from modules.core.request import RequestError
from modules.networks.embedding_files import Embedding
from modules.networks.hypernetwork import Hypernetwork, HypernetworkModule, parse_dropout_structure

__all__ = ["CreateError", "sanitize_name", "embedding_init_vectors", "embedding_file_dict", "save_embedding",
           "embedding_checksum", "new_hypernetwork", "hypernetwork_file_dict", "save_hypernetwork", "save_optimizer",
           "load_optimizer", "parse_number_list", "WEIGHT_INITS", "embedding_png_chunk"]

WEIGHT_INITS = ("Normal", "KaimingUniform", "KaimingNormal", "XavierUniform", "XavierNormal")
A1111_PLACEHOLDER = {"*": 265}  # string_to_token as A1111 writes it (the token id of "*")


class CreateError(RequestError):
    """Bad input for create/train; ``field`` names the request field (the API answers 422)."""

    @property
    def reason(self) -> str:
        return self.message


def sanitize_name(name: Any, field: str = "name") -> str:
    """A1111 keeps letters, digits and ``._- `` of a new file's name."""
    cleaned = "".join(ch for ch in str(name or "") if ch.isalnum() or ch in "._- ").strip()
    if not cleaned or cleaned.strip(".") == "":
        raise CreateError(field, f"{name!r} has no usable characters (letters, digits, '._- ')")
    return cleaned


def parse_number_list(value: Any, field: str) -> list[float] | None:
    """``"1, 2, 1"`` or ``[1, 2, 1]`` -> floats; None/empty -> None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [float(str(p).strip()) for p in parts if str(p).strip()]
    except ValueError:
        raise CreateError(field, f"{value!r} is not a comma-separated list of numbers") from None


def _atomic_torch_save(data: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


# --- embeddings -------------------------------------------------------------------------------------------

def embedding_init_vectors(tokenizer, text_encoder, init_text: str, num_vectors: int) -> torch.Tensor:
    """[num_vectors, width] starting vectors: the token embeddings of ``init_text`` spread over the vectors
    (vector i takes token ``i * tokens // num_vectors``), zeros for an empty text (A1111's rule)."""
    layer = text_encoder.get_input_embeddings()
    width = int(layer.weight.shape[1])
    vec = torch.zeros((num_vectors, width), dtype=torch.float32)
    if not init_text:
        return vec
    ids = tokenizer(init_text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"][:num_vectors]
    if not ids:
        return vec
    with torch.no_grad():
        embedded = layer.weight[torch.tensor(ids, device=layer.weight.device)].detach().float().cpu()
    for i in range(num_vectors):
        vec[i] = embedded[i * len(ids) // num_vectors]
    return vec


def embedding_file_dict(name: str, vec: torch.Tensor, step: int, sd_checkpoint: str | None,
                        sd_checkpoint_name: str | None) -> dict:
    return {"string_to_token": dict(A1111_PLACEHOLDER),
            "string_to_param": {"*": vec.detach().float().cpu().clone()},
            "name": name, "step": int(step), "sd_checkpoint": sd_checkpoint,
            "sd_checkpoint_name": sd_checkpoint_name}


def save_embedding(path: Path, name: str, vec: torch.Tensor, step: int, sd_checkpoint: str | None,
                   sd_checkpoint_name: str | None) -> Path:
    _atomic_torch_save(embedding_file_dict(name, vec, step, sd_checkpoint, sd_checkpoint_name), Path(path))
    return Path(path)


def embedding_checksum(vec: torch.Tensor) -> str:
    """The 4-hex checksum A1111 stores in an embedding's ``.optim`` (a multiplicative hash of vec * 100)."""
    r = 0
    for v in (vec.detach().float().cpu().reshape(-1) * 100).tolist():
        r = (r * 281 ^ int(v) * 997) & 0xFFFFFFFF
    return f"{r & 0xFFFF:04x}"


def embedding_png_chunk(name: str, vec: torch.Tensor, step: int, sd_checkpoint: str | None,
                        sd_checkpoint_name: str | None) -> str:
    """The ``sd-ti-embedding`` PNG text chunk value: base64 JSON, tensors as ``{"TORCHTENSOR": lists}``."""
    data = embedding_file_dict(name, vec, step, sd_checkpoint, sd_checkpoint_name)

    def encode(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return {"TORCHTENSOR": obj.tolist()}
        if isinstance(obj, dict):
            return {k: encode(v) for k, v in obj.items()}
        return obj

    return base64.b64encode(json.dumps(encode(data)).encode("utf-8")).decode("ascii")


# --- hypernetworks ----------------------------------------------------------------------------------------

def _init_module(module: HypernetworkModule, weight_init: str, activation_func: str | None,
                 gen: torch.Generator) -> None:
    """A1111's initialisations: Linear layers as asked (biases 0, or N(0, 0.005) for the Xavier and Kaiming
    kinds as the reference draws them); LayerNorm weight 1, bias 0."""
    nonlinearity = "leaky_relu" if activation_func == "leakyrelu" else "relu"
    with torch.no_grad():
        for layer in module.linear:
            if isinstance(layer, torch.nn.LayerNorm):
                layer.weight.fill_(1.0)
                layer.bias.zero_()
            if not isinstance(layer, torch.nn.Linear):
                continue
            w, b = layer.weight, layer.bias
            if weight_init == "Normal":
                w.copy_(torch.randn(w.shape, generator=gen) * 0.01)
                b.zero_()
                continue
            tmp = torch.empty_like(w)
            if weight_init == "XavierUniform":
                torch.nn.init.xavier_uniform_(tmp, generator=gen)
            elif weight_init == "XavierNormal":
                torch.nn.init.xavier_normal_(tmp, generator=gen)
            elif weight_init == "KaimingUniform":
                torch.nn.init.kaiming_uniform_(tmp, nonlinearity=nonlinearity, generator=gen)
            else:
                torch.nn.init.kaiming_normal_(tmp, nonlinearity=nonlinearity, generator=gen)
            w.copy_(tmp)
            b.zero_()


def new_hypernetwork(name: str, sizes: Sequence[int], *, layer_structure: Sequence[float] | None = None,
                     activation_func: str | None = None, weight_init: str = "Normal", add_layer_norm: bool = False,
                     use_dropout: bool = False, dropout_structure: Sequence[float] | None = None,
                     activate_output: bool = False, last_layer_dropout: bool = False, seed: int = 0) -> Hypernetwork:
    """A fresh hypernetwork with one key/value MLP pair per width in ``sizes``. CreateError names the field."""
    ls = list(layer_structure) if layer_structure else [1.0, 2.0, 1.0]
    if len(ls) < 2 or ls[0] != 1 or ls[-1] != 1 or any(v <= 0 for v in ls):
        raise CreateError("layer_structure", f"must start and end with 1 and hold positive numbers, got {ls}")
    if weight_init not in WEIGHT_INITS:
        raise CreateError("weight_init", f"must be one of {', '.join(WEIGHT_INITS)}, got {weight_init!r}")
    if not sizes:
        raise CreateError("enable_sizes", "choose at least one module width")
    if dropout_structure is not None and use_dropout:
        ds = list(dropout_structure)
        if len(ds) != len(ls):
            raise CreateError("dropout_structure", f"needs {len(ls)} values like the layer structure, got {ds}")
        if ds[0] != 0 or ds[-1] != 0 or any(not 0 <= v < 1 for v in ds):
            raise CreateError("dropout_structure", f"values must be in [0, 1) and start and end with 0, got {ds}")
    else:
        ds = parse_dropout_structure(ls, use_dropout, last_layer_dropout)
    gen = torch.Generator().manual_seed(int(seed))
    layers = {}
    for size in sorted({int(s) for s in sizes}):
        if size <= 0:
            raise CreateError("enable_sizes", f"invalid width {size}")
        pair = []
        for _ in range(2):
            try:
                module = HypernetworkModule(size, layer_structure=ls, activation_func=activation_func,
                                            is_layer_norm=add_layer_norm, activate_output=activate_output,
                                            dropout_structure=ds)
            except ValueError as e:
                raise CreateError("activation_func" if "activation" in str(e) else "layer_structure", str(e)) from e
            _init_module(module, weight_init, activation_func, gen)
            pair.append(module)
        layers[size] = (pair[0], pair[1])
    return Hypernetwork(name=name, filename="", layers=layers, layer_structure=ls, activation_func=activation_func,
                        is_layer_norm=add_layer_norm, activate_output=activate_output, dropout_structure=ds,
                        use_dropout=bool(use_dropout), last_layer_dropout=last_layer_dropout,
                        weight_initialization=weight_init)


def hypernetwork_file_dict(hn: Hypernetwork, name: str, step: int, sd_checkpoint: str | None,
                           sd_checkpoint_name: str | None) -> dict:
    data: dict[Any, Any] = {}
    for width, (k, v) in sorted(hn.layers.items()):
        data[int(width)] = [{n: t.detach().float().cpu().clone() for n, t in k.state_dict().items()},
                            {n: t.detach().float().cpu().clone() for n, t in v.state_dict().items()}]
    data.update({
        "step": int(step),
        "name": name,
        "layer_structure": [float(x) for x in hn.layer_structure],
        "activation_func": hn.activation_func,
        "is_layer_norm": bool(hn.is_layer_norm),
        "weight_initialization": hn.weight_initialization,
        "sd_checkpoint": sd_checkpoint,
        "sd_checkpoint_name": sd_checkpoint_name,
        "activate_output": bool(hn.activate_output),
        "use_dropout": bool(hn.use_dropout),
        "dropout_structure": [float(x) for x in hn.dropout_structure],
        "last_layer_dropout": bool(hn.last_layer_dropout),
        "optional_info": hn.optional_info,
    })
    return data


def save_hypernetwork(path: Path, hn: Hypernetwork, name: str, step: int, sd_checkpoint: str | None,
                      sd_checkpoint_name: str | None) -> Path:
    _atomic_torch_save(hypernetwork_file_dict(hn, name, step, sd_checkpoint, sd_checkpoint_name), Path(path))
    return Path(path)


def file_shorthash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


# --- optimizer sidecar ------------------------------------------------------------------------------------

def optim_path(path: Path) -> Path:
    return Path(str(path) + ".optim")


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer, checksum: str) -> Path:
    out = optim_path(path)
    _atomic_torch_save({"hash": checksum, "optimizer_name": type(optimizer).__name__,
                        "optimizer_state_dict": optimizer.state_dict()}, out)
    return out


def load_optimizer(path: Path, checksum: str) -> dict | None:
    """The optimizer state saved beside ``path`` if its hash is ``checksum``; None otherwise (absent, for
    other weights, or unreadable)."""
    from modules.models.safe_load import CheckpointLoadError, torch_load_safe

    sidecar = optim_path(path)
    if not sidecar.is_file():
        return None
    try:
        data = torch_load_safe(sidecar, map_location="cpu")
    except (CheckpointLoadError, OSError):
        return None
    if not isinstance(data, dict) or data.get("hash") != checksum or not isinstance(data.get("optimizer_state_dict"), dict):
        return None
    return data["optimizer_state_dict"]


def remove_stale_optimizer(path: Path) -> None:
    try:
        os.remove(optim_path(path))
    except FileNotFoundError:
        pass


def embedding_from_vec(name: str, vec: torch.Tensor, path: Path, step: int) -> Embedding:
    return Embedding(name=name, vec=vec, filename=str(path), step=step)
