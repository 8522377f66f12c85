"""The Engine's side of the Checkpoint Merger: names to files, files to state dicts, the merge, the new listing.

The arithmetic and the writing are :mod:`modules.models.merge`; this module reads each checkpoint the way the
app loads it (a single file's original-layout tensors, or a diffusers folder exported to that layout), bakes in
a VAE from the VAE list, names the result, stores the recipe and lists the new file.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from modules.models import merge

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class MergeResult:
    path: Path
    title: str  # the new checkpoint's title in the list (what the checkpoint dropdown shows)
    config: Path | None  # the copied NAME.yaml, if any


def find_checkpoint(engine: "Engine", name: str, field: str) -> Any:
    """The CheckpointInfo a dropdown value names (title, name, or hash)."""
    for info in engine.available_checkpoints():
        if name in (info.title, info.name, info.model_name, info.short_title) or name in info.ids:
            return info
    found = engine.checkpoints.get_closest(name)
    if found is None:
        raise merge.MergeError(field, f"no checkpoint {name!r}; press 🔄 to list new files")
    return found


def read_checkpoint(info: Any, *, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """All weights of a checkpoint in the original single-file layout, on the CPU."""
    from modules.models import checkpoint_loader, ldm_export

    if Path(info.filename).is_dir():
        model = checkpoint_loader.load_diffusers_folder(info.filename, device="cpu", dtype=None)
        return ldm_export.components_to_ldm(model, model.family)
    return checkpoint_loader.load_checkpoint_state_dict(info.filename, allow_unsafe_pickle=allow_unsafe_pickle)


def read_vae(engine: "Engine", name: str) -> dict[str, torch.Tensor]:
    """A VAE from the VAE list as ``first_stage_model.*`` tensors (the layout a checkpoint holds it in)."""
    from modules.models import checkpoint_detect, checkpoint_loader, ldm_export

    path = engine.vaes.get(name)
    if path is None:
        raise merge.MergeError("bake_in_vae", f"no VAE {name!r} in the VAE folders")
    diffusers_sd = checkpoint_loader.load_vae(path, allow_unsafe_pickle=_unsafe(engine))
    config = checkpoint_loader.vae_config_from_diffusers_state_dict(
        diffusers_sd, checkpoint_detect.shipped_config("sd1", "vae"))
    return ldm_export.vae_to_ldm(diffusers_sd, config)


def _unsafe(engine: "Engine") -> bool:
    return bool(getattr(getattr(engine, "args", None), "disable_safe_unpickle", False))


def _sha256(engine: "Engine", info: Any) -> str | None:
    try:
        engine.checkpoints.calculate_hash(info)
    except (OSError, ValueError) as exc:
        log.warning("could not hash %s: %s", info.filename, exc)
    return info.sha256


def _kept_metadata(info: Any) -> dict[str, str]:
    """What the primary model's metadata says about the model itself (its resolution, architecture)."""
    return {k: v for k, v in (info.metadata or {}).items() if k.startswith("modelspec.")}


def merge_checkpoints(engine: "Engine", recipe: merge.Recipe) -> MergeResult:
    """Merge as ``recipe`` says into the first checkpoint folder; refuses to overwrite a file."""
    recipe.check()
    roles = ["primary"]
    if recipe.interp_method != "No interpolation":
        roles.append("secondary")
    if recipe.interp_method == "Add difference":
        roles.append("tertiary")
    infos = {role: find_checkpoint(engine, getattr(recipe, role), role) for role in roles}
    name = recipe.custom_name.strip() or merge.default_name(
        recipe.interp_method, *(infos[r].model_name if r in infos else "" for r in ("primary", "secondary", "tertiary")),
        multiplier=recipe.multiplier)
    target = Path(engine.paths.ckpt_dirs[0]) / f"{name}.{recipe.checkpoint_format}"
    if target.exists():
        raise merge.MergeError("custom_name", f"{target.name} already exists in {target.parent}; choose another name")

    unsafe = _unsafe(engine)
    tensors = {role: read_checkpoint(info, allow_unsafe_pickle=unsafe) for role, info in infos.items()}
    state = merge.merge_state_dicts(tensors["primary"], tensors.get("secondary"), tensors.get("tertiary"),
                                    method=recipe.interp_method, multiplier=recipe.multiplier)
    del tensors
    if recipe.bake_in_vae and recipe.bake_in_vae != "None":
        state = merge.bake_vae(state, read_vae(engine, recipe.bake_in_vae))
    state = merge.discard(state, recipe.discard_weights)
    if recipe.save_as_half:
        state = merge.to_half(state)

    # A1111's order: the inputs' metadata (when copied), the user's JSON over it, then the recipe. The primary's
    # modelspec (its native resolution) is kept even without metadata, so the merge opens at the same size.
    metadata = _kept_metadata(infos["primary"])
    if recipe.save_metadata and recipe.copy_metadata_fields:
        for info in infos.values():  # values the reader parsed as JSON are written as JSON again
            metadata.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (info.metadata or {}).items()})
    if recipe.save_metadata:
        metadata.update(recipe.user_metadata())
        metadata["format"] = "pt"
    if recipe.save_metadata and recipe.add_merge_recipe:
        hashes = {role: _sha256(engine, info) for role, info in infos.items()}
        models = {role: {"name": info.name, "legacy_hash": info.hash} for role, info in infos.items()}
        previous = {role: dict(info.metadata or {}) for role, info in infos.items()}
        metadata.update(merge.recipe_metadata(recipe, models, hashes, previous))
    merge.write_checkpoint(state, target, metadata if recipe.checkpoint_format == "safetensors" else None)

    config = None
    sources = {"A, B or C": roles, "B": ["secondary"], "C": ["tertiary"], "Don't": []}[recipe.config_source]
    for role in sources:
        if role in infos:
            config = merge.copy_config(infos[role].filename, target)
            if config is not None:
                break
    engine.refresh_checkpoints()
    listed = next((i for i in engine.checkpoints.list() if os.path.samefile(i.filename, target)), None)
    return MergeResult(target, listed.title if listed is not None else target.name, config)
