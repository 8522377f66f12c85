"""Checkpoint Merger: A1111's three ways of making one checkpoint from others, on the CPU.

Pure functions on original-layout state dicts (``model.diffusion_model.*``, ``first_stage_model.*`` ...), so
any checkpoint the app loads can be merged: a single file as it is, a diffusers folder after
:func:`modules.models.ldm_export.components_to_ldm`. The result is written atomically, with the recipe in its
metadata (``sd_merge_recipe`` / ``sd_merge_models``, A1111's keys) so a user can tell how it was made.

- **No interpolation**: A alone (to convert it: fp16, another format, a baked VAE, weights discarded).
- **Weighted sum**: ``A * (1 - M) + B * M``.
- **Add difference**: ``A + (B - C) * M``.

Keys only A has stay as in A. An inpainting A (9 input channels) merges its first 4 channels with a normal B,
as A1111 does; other shape mismatches are refused, naming the key.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

METHODS = ("No interpolation", "Weighted sum", "Add difference")
FORMATS = ("safetensors", "ckpt")
CONFIG_SOURCES = ("A, B or C", "B", "C", "Don't")
UNET_INPUT_KEY = "model.diffusion_model.input_blocks.0.0.weight"
# Never merged: a position-id table is an index, not a weight (A1111's checkpoint_dict_skip_on_merge).
SKIP_ON_MERGE = frozenset({"cond_stage_model.transformer.text_model.embeddings.position_ids"})
VAE_PREFIX = "first_stage_model."


class MergeError(ValueError):
    """A merge that cannot be done; ``field`` names the input at fault (for the page's message)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass
class Recipe:
    """What the user asked for (A1111's Checkpoint Merger fields); stored in the result's metadata."""

    primary: str
    secondary: str = ""
    tertiary: str = ""
    interp_method: str = "Weighted sum"
    multiplier: float = 0.3
    save_as_half: bool = False
    custom_name: str = ""
    checkpoint_format: str = "safetensors"
    config_source: str = "A, B or C"
    bake_in_vae: str = "None"
    discard_weights: str = ""
    save_metadata: bool = True
    add_merge_recipe: bool = True  # sd_merge_recipe / sd_merge_models
    copy_metadata_fields: bool = True  # the inputs' own metadata (A, then B, then C over it)
    metadata_json: str = "{}"  # the user's metadata, over the copied fields

    def user_metadata(self) -> dict[str, str]:
        """``metadata_json`` as safetensors metadata (string values); MergeError unless it is a JSON object."""
        try:
            value = json.loads(self.metadata_json or "{}")
        except json.JSONDecodeError as exc:
            raise MergeError("metadata_json", f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise MergeError("metadata_json", f"must be a JSON object, got {type(value).__name__}")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}

    def check(self) -> None:
        if self.interp_method not in METHODS:
            raise MergeError("interp_method", f"{self.interp_method!r} is not one of {', '.join(METHODS)}")
        if self.checkpoint_format not in FORMATS:
            raise MergeError("checkpoint_format", f"{self.checkpoint_format!r} is not one of {', '.join(FORMATS)}")
        if not self.primary:
            raise MergeError("primary", "choose the primary model (A)")
        if self.interp_method != "No interpolation" and not self.secondary:
            raise MergeError("secondary", f"{self.interp_method} needs a secondary model (B)")
        if self.interp_method == "Add difference" and not self.tertiary:
            raise MergeError("tertiary", "Add difference needs a tertiary model (C)")
        if not 0.0 <= float(self.multiplier) <= 1.0:
            raise MergeError("multiplier", f"must be between 0 and 1, got {self.multiplier}")
        if self.discard_weights:
            try:
                re.compile(self.discard_weights)
            except re.error as exc:
                raise MergeError("discard_weights", f"not a regular expression: {exc}") from None
        if self.save_metadata:
            self.user_metadata()
        if self.custom_name and (os.sep in self.custom_name or "/" in self.custom_name or
                                 self.custom_name.startswith(".")):
            raise MergeError("custom_name", "a file name, without folders")


# --- the arithmetic ----------------------------------------------------------------------------------


def _merge_tensor(key: str, a: torch.Tensor, others: list[torch.Tensor],
                  combine: Callable[..., torch.Tensor]) -> torch.Tensor:
    if all(o.shape == a.shape for o in others):
        return combine(a, *others).to(a.dtype)
    if key == UNET_INPUT_KEY and a.ndim == 4 and all(o.shape[1] == 4 and o.shape[0] == a.shape[0] for o in others):
        out = a.clone()  # inpainting / instruct-pix2pix A: its extra input channels stay as A's
        out[:, :4] = combine(a[:, :4], *others).to(a.dtype)
        return out
    shapes = ", ".join(str(tuple(t.shape)) for t in (a, *others))
    if key == UNET_INPUT_KEY:
        raise MergeError("primary", f"{key}: shapes {shapes}; to merge an inpainting model with a normal one, "
                                    "A must be the inpainting model")
    raise MergeError("secondary", f"{key}: shapes {shapes} differ; the models are not of the same kind")


def merge_state_dicts(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor] | None = None,
                      c: Mapping[str, torch.Tensor] | None = None, *, method: str = "Weighted sum",
                      multiplier: float = 0.3) -> dict[str, torch.Tensor]:
    """The merged state dict (float math in float32, each result in A's dtype); the inputs are not changed."""
    m = float(multiplier)
    if method == "No interpolation":
        return dict(a)
    if method == "Weighted sum":
        if b is None:
            raise MergeError("secondary", "Weighted sum needs B")
        others = (b,)
        combine = lambda x, y: x.float() * (1.0 - m) + y.float() * m  # noqa: E731
    elif method == "Add difference":
        if b is None or c is None:
            raise MergeError("tertiary", "Add difference needs B and C")
        others = (b, c)
        combine = lambda x, y, z: x.float() + (y.float() - z.float()) * m  # noqa: E731
    else:
        raise MergeError("interp_method", f"{method!r} is not one of {', '.join(METHODS)}")
    out: dict[str, torch.Tensor] = {}
    for key, tensor in a.items():
        parts = [o.get(key) for o in others]
        if key in SKIP_ON_MERGE or any(p is None for p in parts) or not tensor.is_floating_point():
            out[key] = tensor
            continue
        out[key] = _merge_tensor(key, tensor, parts, combine)
    return out


def bake_vae(state: Mapping[str, torch.Tensor], vae_ldm: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its ``first_stage_model.*`` replaced by the VAE (given in the original layout, prefixed)."""
    out = {k: v for k, v in state.items() if not k.startswith(VAE_PREFIX)}
    out.update(vae_ldm)
    return out


def discard(state: Mapping[str, torch.Tensor], pattern: str) -> dict[str, torch.Tensor]:
    """``state`` without the keys ``pattern`` finds (A1111's "Discard weights with matching name")."""
    if not pattern:
        return dict(state)
    regex = re.compile(pattern)
    return {k: v for k, v in state.items() if not regex.search(k)}


def to_half(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


# --- names and metadata -----------------------------------------------------------------------------


def default_name(method: str, a: str, b: str = "", c: str = "", multiplier: float = 0.3) -> str:
    """A1111's file name for a merge without a custom name (no extension)."""
    m = round(float(multiplier), 2)
    if method == "Weighted sum":
        return f"{round(1 - m, 2)}({a}) + {m}({b})"
    if method == "Add difference":
        return f"{a} + {m}({b} - {c})"
    return a


def recipe_metadata(recipe: Recipe, models: Mapping[str, Mapping[str, Any]], hashes: Mapping[str, str | None],
                    previous: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Safetensors metadata: ``sd_merge_recipe`` (what was done) and ``sd_merge_models`` (each input by sha256,
    with its own recipe when it was itself a merge), as A1111 writes them."""
    used = {"primary": True, "secondary": recipe.interp_method != "No interpolation",
            "tertiary": recipe.interp_method == "Add difference"}
    merge_recipe = {
        "type": "webui",
        "primary_model_hash": hashes.get("primary"),
        "secondary_model_hash": hashes.get("secondary") if used["secondary"] else None,
        "tertiary_model_hash": hashes.get("tertiary") if used["tertiary"] else None,
        "interp_method": recipe.interp_method,
        "multiplier": float(recipe.multiplier),
        "save_as_half": bool(recipe.save_as_half),
        "custom_name": recipe.custom_name,
        "config_source": recipe.config_source,
        "bake_in_vae": recipe.bake_in_vae,
        "discard_weights": recipe.discard_weights,
        "is_inpainting": False,
        "is_instruct_pix2pix": False,
    }
    merged_models: dict[str, Any] = {}
    for role, info in models.items():
        sha = hashes.get(role)
        if not used.get(role) or not sha:
            continue
        entry = {"name": info.get("name"), "legacy_hash": info.get("legacy_hash")}
        inner = previous.get(role, {})
        if inner.get("sd_merge_recipe"):
            entry["sd_merge_recipe"] = json.loads(inner["sd_merge_recipe"])
            merged_models.update(json.loads(inner.get("sd_merge_models") or "{}"))
        merged_models[sha] = entry
    return {"format": "pt", "sd_merge_recipe": json.dumps(merge_recipe), "sd_merge_models": json.dumps(merged_models)}


# --- writing ----------------------------------------------------------------------------------------


def write_checkpoint(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``.safetensors`` (with ``metadata``) or ``.ckpt`` (``{"state_dict": ...}``) atomically: a temporary
    file in the same folder, then a rename, so a failed or interrupted merge never leaves half a checkpoint."""
    from modules.models import ldm_export

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        if path.suffix.lower() == ".safetensors":
            ldm_export.write_safetensors(tensors, tmp, metadata)
        else:
            with open(tmp, "wb") as f:
                torch.save({"state_dict": tensors}, f)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def copy_config(source_checkpoint: str | os.PathLike, result: Path) -> Path | None:
    """Copy the source's ``NAME.yaml`` beside the result (A1111's "Copy config from"); None when it has none."""
    source = Path(source_checkpoint)
    yaml = (source if source.is_dir() else source.with_suffix("")).with_name(
        (source.name if source.is_dir() else source.stem) + ".yaml")
    if not yaml.is_file():
        return None
    target = result.with_suffix(".yaml")
    shutil.copyfile(yaml, target)
    return target


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    return asdict(recipe)
