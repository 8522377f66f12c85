"""One textual-inversion file -> an `Embedding` (spec §2.1-2.3, §2.7).

`.pt`/`.bin` go through the restricted unpickler (`modules.safe_load`), `.safetensors` through safetensors,
images (`.png .webp .jxl .avif`) through `embedding_images`. The data layouts accepted are those of
`embedding_from_data`: A1111 `string_to_param`, SDXL `clip_l` + `clip_g`, and single-tensor dicts
(diffusers `{"<token>": [width]}`, `{"emb_params": [n, width]}`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from modules.models import safe_load

PICKLE_SUFFIXES = (".pt", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)
IMAGE_SUFFIXES = (".png", ".webp", ".jxl", ".avif")
EMBEDDING_SUFFIXES = PICKLE_SUFFIXES + SAFETENSORS_SUFFIXES + IMAGE_SUFFIXES
SDXL_KEYS = ("clip_l", "clip_g")
_PARAMETER_DICT = "torch.nn.modules.container.ParameterDict"


class EmbeddingLoadError(ValueError):
    """An embedding file could not be used. `path` is the file (or the name), `reason` says why."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot load embedding {self.path}: {reason}")

    def __reduce__(self):  # picklable, like CheckpointLoadError
        return (type(self), (self.path, self.reason))


@dataclass(eq=False)
class Embedding:
    """A textual-inversion embedding. `vec` is [n, width] float32 on the CPU, or for SDXL
    {"clip_l": [n, 768], "clip_g": [n, 1280]}."""

    name: str
    vec: torch.Tensor | dict[str, torch.Tensor]
    filename: str | None = None
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None
    source: str = "file"  # "file" | "lora:<lora name>"

    @property
    def vectors(self) -> int:
        if isinstance(self.vec, dict):
            return int(self.vec["clip_g"].shape[0])
        return int(self.vec.shape[0])

    @property
    def shape(self) -> int:
        """Width: 768 SD1, 1024 SD2, 768 + 1280 = 2048 SDXL."""
        if isinstance(self.vec, dict):
            return int(sum(v.shape[-1] for v in self.vec.values()))
        return int(self.vec.shape[-1])


def is_embedding_candidate(path: str | os.PathLike) -> bool:
    """Whether a folder listing entry is looked at at all: known suffix, and not an image preview
    (`foo.preview.png`)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        return False
    return not (suffix in IMAGE_SUFFIXES and p.stem.lower().endswith(".preview"))


def _as_vectors(value: Any, where: str, label: str) -> torch.Tensor:
    """A [n, width] float32 CPU tensor from a tensor (1-D is one vector)."""
    if not isinstance(value, torch.Tensor):
        raise EmbeddingLoadError(where, f"{label} is {type(value).__name__}, not a tensor")
    tensor = value.detach()
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise EmbeddingLoadError(where, f"{label} has shape {list(value.shape)}; expected [vectors, width]")
    if not tensor.is_floating_point():
        raise EmbeddingLoadError(where, f"{label} has dtype {tensor.dtype}; expected floating point")
    return tensor.to(device="cpu", dtype=torch.float32).contiguous()


def _optional(data: Mapping, key: str, kind: type) -> Any:
    value = data.get(key)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str):
        return value
    return None


def embedding_from_data(data: dict, name: str, filename: str | None) -> Embedding:
    """An `Embedding` named `name` from one of the spec §2.2 layouts. EmbeddingLoadError (naming
    `filename`, or `name` without one) if the data is none of them."""
    where = filename or name
    if not isinstance(data, Mapping):
        raise EmbeddingLoadError(where, f"the file holds a {type(data).__name__}, not a dict of tensors")
    if "string_to_param" in data:
        params = data["string_to_param"]
        params = getattr(params, "_parameters", params)  # torch.nn.ParameterDict
        if not isinstance(params, Mapping):
            raise EmbeddingLoadError(where, "string_to_param is not a dict")
        if len(params) != 1:
            raise EmbeddingLoadError(where, f"embedding file has multiple terms in it ({len(params)} entries in "
                                            "string_to_param; exactly one is expected)")
        vec: torch.Tensor | dict[str, torch.Tensor] = _as_vectors(
            next(iter(params.values())), where, "string_to_param entry")
    elif all(key in data for key in SDXL_KEYS):
        vec = {key: _as_vectors(data[key], where, key) for key in SDXL_KEYS}
        counts = {key: v.shape[0] for key, v in vec.items()}
        if len(set(counts.values())) != 1:
            raise EmbeddingLoadError(where, f"clip_l and clip_g hold different numbers of vectors {counts}")
    elif len(data) == 1 and isinstance(next(iter(data.values())), torch.Tensor):
        key = next(iter(data))
        vec = _as_vectors(data[key], where, f"entry {key!r}")
    else:
        keys = ", ".join(repr(k) for k in list(data)[:5]) or "none"
        raise EmbeddingLoadError(where, "neither a textual inversion embedding nor a diffusers concept "
                                        f"(keys: {keys})")
    return Embedding(name=name, vec=vec, filename=filename, step=_optional(data, "step", int),
                     sd_checkpoint=_optional(data, "sd_checkpoint", str),
                     sd_checkpoint_name=_optional(data, "sd_checkpoint_name", str))


def _load_pickle(path: Path, allow_unsafe_pickle: bool) -> Any:
    try:
        return safe_load.torch_load_safe(path, allow_unsafe_pickle=allow_unsafe_pickle)
    except safe_load.CheckpointLoadError as e:
        # Old A1111 files keep string_to_param in a ParameterDict, which the reference allows; it only
        # holds parameters, so it is allowed here too, and only for the file that needs it.
        if _PARAMETER_DICT not in e.reason:
            raise EmbeddingLoadError(path, e.reason) from e
    try:
        with torch.serialization.safe_globals([torch.nn.ParameterDict]):
            return safe_load.torch_load_safe(path)
    except safe_load.CheckpointLoadError as e:
        raise EmbeddingLoadError(path, e.reason) from e


def _load_image(path: Path) -> Embedding | None:
    from PIL import Image, UnidentifiedImageError

    from modules.networks import embedding_images

    try:
        with Image.open(path) as image:
            image.load()
            data = embedding_images.read_image_embedding_data(image)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as e:
        raise EmbeddingLoadError(path, f"cannot read the image ({e})") from e
    except ValueError as e:
        raise EmbeddingLoadError(path, str(e)) from e
    if data is None:
        return None
    name = data.get("name")
    name = name if isinstance(name, str) and name else path.stem
    return embedding_from_data(data, name, str(path))


def load_embedding_file(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> Embedding | None:
    """The embedding in `path`; None for an image that carries none (just a picture, or a
    `.preview` image). EmbeddingLoadError for a missing, empty, broken or unrecognised file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in EMBEDDING_SUFFIXES:
        raise EmbeddingLoadError(p, f"unrecognised file type {suffix or '(no suffix)'!r}: expected one of "
                                    f"{', '.join(EMBEDDING_SUFFIXES)}")
    if not p.is_file():
        raise EmbeddingLoadError(p, "file not found")
    if p.stat().st_size == 0:
        raise EmbeddingLoadError(p, "the file is empty")
    if suffix in IMAGE_SUFFIXES:
        return None if not is_embedding_candidate(p) else _load_image(p)
    if suffix in SAFETENSORS_SUFFIXES:
        try:
            data: Any = safe_load.load_state_dict(p)
        except safe_load.CheckpointLoadError as e:
            raise EmbeddingLoadError(p, e.reason) from e
    else:
        data = _load_pickle(p, allow_unsafe_pickle)
    # The trigger of a tensor file is its file name; any "name" inside is ignored (spec §2.3).
    return embedding_from_data(data, p.stem, str(p))
