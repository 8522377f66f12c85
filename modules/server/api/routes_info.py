"""/sdapi/v1 listings, settings, model management and the features this app does not have (spec §9.1).

Features A1111 has and this app lacks answer as A1111 does with none installed: no face restorers (empty
list). Training has its own routes (``routes_train``).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body
from fastapi.encoders import jsonable_encoder

from modules.core import samplers
from modules.models import upscalers
from modules.engine import settings_changes
from modules.server.api import memory, models

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost


def _options_for_api(engine: "Engine") -> dict[str, Any]:
    """Every setting (GET /sdapi/v1/options); ``sd_checkpoint_hash`` tells the loaded checkpoint's sha256."""
    data = engine.options.data()
    info = engine.checkpoint_info
    if info is not None and info.sha256 and not data.get("sd_checkpoint_hash"):
        data["sd_checkpoint_hash"] = info.sha256
    return data


def _config_near(filename: str) -> str | None:
    """A1111's ``find_checkpoint_config_near_filename``: ``<stem>.yaml`` next to the checkpoint."""
    stem = os.path.splitext(filename)[0] if os.path.isfile(filename) else filename.rstrip("/\\")
    config = stem + ".yaml"
    return config if os.path.isfile(config) else None


def _embedding_item(embedding: Any) -> dict[str, Any]:
    return {"step": embedding.step, "sd_checkpoint": embedding.sd_checkpoint,
            "sd_checkpoint_name": embedding.sd_checkpoint_name, "shape": embedding.shape, "vectors": embedding.vectors}


def _options_schema(engine: Engine) -> dict[str, Any]:
    """OpenAPI body of POST /options: the known settings with their JSON types (any other key is a 422)."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    properties: dict[str, Any] = {}
    for info in engine.options.infos():
        kind = kinds.get(info.kind) if info.kind is not None else None
        properties[info.key] = {"type": kind} if kind else {"type": ["string", "null"]}
    return {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": properties}}}}}


def add_routes(router: APIRouter, host: "ScriptHost") -> None:
    engine = host.engine
    networks = engine.networks

    # ---- settings and flags --------------------------------------------------------------------------
    @router.get("/options")
    def get_config() -> dict[str, Any]:
        return jsonable_encoder(_options_for_api(engine))

    @router.post("/options", openapi_extra=_options_schema(engine))
    def set_config(req: dict[str, Any] = Body(...)) -> None:
        settings_changes.apply_options(engine, req)

    @router.get("/cmd-flags")
    def get_cmd_flags() -> dict[str, Any]:
        return {k: _plain(v) for k, v in vars(engine.args).items()}

    # ---- samplers, upscalers -------------------------------------------------------------------------
    @router.get("/samplers", response_model=list[models.SamplerItem])
    def get_samplers() -> list[dict[str, Any]]:
        return samplers.samplers_for_api()

    @router.get("/schedulers", response_model=list[models.SchedulerItem])
    def get_schedulers() -> list[dict[str, Any]]:
        return samplers.schedulers_for_api()

    @router.get("/upscalers", response_model=list[models.UpscalerItem])
    def get_upscalers() -> list[dict[str, Any]]:
        return engine.upscalers.upscalers_for_api()

    @router.get("/latent-upscale-modes", response_model=list[models.LatentUpscalerModeItem])
    def get_latent_upscale_modes() -> list[dict[str, Any]]:
        return upscalers.latent_upscale_modes_for_api()

    @router.get("/realesrgan-models", response_model=list[models.RealesrganItem])
    def get_realesrgan_models() -> list[dict[str, Any]]:
        return [{"name": u.name, "path": u.model_path, "scale": u.scale}
                for u in engine.upscalers.list() if u.model_name == "RealESRGAN"]

    @router.get("/face-restorers", response_model=list[models.FaceRestorerItem])
    def get_face_restorers() -> list[dict[str, Any]]:
        return []

    # ---- checkpoints, VAEs, styles, networks ---------------------------------------------------------
    @router.get("/sd-models", response_model=list[models.SDModelItem])
    def get_sd_models() -> list[dict[str, Any]]:
        return [{"title": c.title, "model_name": c.model_name, "hash": c.shorthash, "sha256": c.sha256,
                 "filename": c.filename, "config": _config_near(c.filename)} for c in engine.available_checkpoints()]

    @router.get("/sd-vae", response_model=list[models.SDVaeItem])
    def get_sd_vaes() -> list[dict[str, Any]]:
        return [{"model_name": name, "filename": engine.vaes.get(name)} for name in engine.vaes.names()]

    @router.get("/prompt-styles", response_model=list[models.PromptStyleItem])
    def get_prompt_styles() -> list[dict[str, Any]]:
        return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                for s in engine.styles.styles.values()]

    @router.get("/hypernetworks", response_model=list[models.HypernetworkItem])
    def get_hypernetworks() -> list[dict[str, Any]]:
        return [{"name": e.name, "path": str(e.path)} for e in networks.hypernetworks.items()]

    @router.get("/loras", response_model=list[models.LoraItem])
    def get_loras() -> list[dict[str, Any]]:
        return [{"name": e.name, "alias": e.alias, "path": str(e.path), "metadata": _plain(e.metadata)}
                for e in networks.loras.items()]

    @router.get("/embeddings", response_model=models.EmbeddingsResponse)
    def get_embeddings() -> dict[str, dict[str, Any]]:
        loaded, skipped = networks.embeddings_report(engine.model is not None)
        return {"loaded": {e.name: _embedding_item(e) for e in loaded},
                "skipped": {e.name: _embedding_item(e) for e in skipped}}

    # ---- refresh, load, unload -----------------------------------------------------------------------
    @router.post("/refresh-checkpoints")
    def refresh_checkpoints() -> None:
        engine.refresh_checkpoints()

    @router.post("/refresh-vae")
    def refresh_vae() -> None:
        engine.vaes.refresh()

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        networks.refresh(["lora"])

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> None:
        networks.refresh(["embedding"])
        if engine.model is not None:
            networks.prepare_embeddings(force=True)

    # The model must not change under a running generation: the Engine's methods wait for the queue.
    @router.post("/reload-checkpoint")
    def reloadapi() -> dict[str, Any]:
        engine.reload_checkpoint()
        return {}

    @router.post("/unload-checkpoint")
    def unloadapi() -> dict[str, Any]:
        engine.unload_checkpoint()
        return {}

    # ---- system --------------------------------------------------------------------------------------
    @router.get("/memory", response_model=models.MemoryResponse)
    def get_memory() -> dict[str, Any]:
        return memory.memory_info(getattr(engine.devices, "device", None))

    # ---- scripts and extensions (spec §12) ------------------------------------------------------------
    @router.get("/scripts", response_model=models.ScriptsList)
    def get_scripts_list() -> dict[str, list[str]]:
        return host.scripts.api_script_names()

    @router.get("/script-info", response_model=list[models.ScriptInfo])
    def get_script_info() -> list[dict[str, Any]]:
        return host.scripts.api_script_info()

    @router.get("/extensions", response_model=list[models.ExtensionItem])
    def get_extensions_list() -> list[dict[str, Any]]:
        return host.extensions.api_items()



def _plain(value: Any) -> Any:
    """JSON-friendly copy (paths and other objects as text)."""
    try:
        return jsonable_encoder(value)
    except Exception:
        return str(value)
