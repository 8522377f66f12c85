"""A1111's HTTP API (/sdapi/v1) as a thin door onto the Engine: no generation logic here."""
from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modules import images as image_files
from modules.api import models
from modules.generation_request import GenerationRequest, RequestError

log = logging.getLogger(__name__)


def _error(status: int, exc: Exception, detail: Any = "") -> JSONResponse:
    # A1111's error body shape.
    body = {"error": type(exc).__name__, "detail": detail, "body": "", "errors": str(exc)}
    return JSONResponse(status_code=status, content=jsonable_encoder(body))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, exc, jsonable_encoder(exc.errors()))

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(422, exc, exc.message if not exc.field else f"{exc.field}: {exc.message}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc, exc.detail)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API error on %s", request.url.path)
        return _error(500, exc, "")

    @app.middleware("http")
    async def _process_time(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Process-Time"] = f"{time.perf_counter() - start:.4f}"
        return response


def _decode(value: Any, field: str):
    if not isinstance(value, str):
        raise RequestError(field, "expected a base64-encoded image string")
    try:
        return image_files.decode_base64_image(value)
    except ValueError as exc:
        raise RequestError(field, str(exc)) from exc


def to_generation_request(payload: models._Common, *, img2img: bool) -> GenerationRequest:
    data = payload.model_dump()
    req = GenerationRequest(
        prompt=data["prompt"] or "",
        negative_prompt=data["negative_prompt"] or "",
        styles=list(data["styles"] or []),
        steps=data["steps"],
        sampler_name=data["sampler_name"] or data["sampler_index"] or "Euler",
        scheduler=data["scheduler"] or "Automatic",
        cfg_scale=data["cfg_scale"],
        seed=data["seed"],
        subseed=data["subseed"],
        subseed_strength=data["subseed_strength"],
        seed_resize_from_h=data["seed_resize_from_h"],
        seed_resize_from_w=data["seed_resize_from_w"],
        width=data["width"],
        height=data["height"],
        batch_size=data["batch_size"],
        n_iter=data["n_iter"],
        tiling=bool(data["tiling"]),
        eta=data["eta"],
        override_settings=dict(data["override_settings"] or {}),
        override_settings_restore_afterwards=data["override_settings_restore_afterwards"],
        do_not_save_samples=not data["save_images"],
        do_not_save_grid=not data["save_images"],
        disable_extra_networks=data["disable_extra_networks"],
        id_task=data["force_task_id"],
    )
    if data.get("denoising_strength") is not None:
        req.denoising_strength = data["denoising_strength"]
    if img2img:
        if not data.get("init_images"):
            raise RequestError("init_images", "Init image not found")
        req.init_images = [_decode(img, f"init_images[{i}]") for i, img in enumerate(data["init_images"])]
        if data.get("mask"):
            req.mask = _decode(data["mask"], "mask")
        req.resize_mode = data["resize_mode"]
        req.mask_blur_x, req.mask_blur_y = data["mask_blur_x"], data["mask_blur_y"]
        if data.get("mask_blur") is not None:
            req.mask_blur = data["mask_blur"]
        req.inpainting_fill = data["inpainting_fill"]
        req.inpaint_full_res = bool(data["inpaint_full_res"])
        req.inpaint_full_res_padding = data["inpaint_full_res_padding"]
        req.inpainting_mask_invert = int(data["inpainting_mask_invert"])
        req.initial_noise_multiplier = data["initial_noise_multiplier"]
    else:
        req.enable_hr = data["enable_hr"]
        req.hr_scale = data["hr_scale"]
        req.hr_upscaler = data["hr_upscaler"] or "Latent"
        req.hr_second_pass_steps = data["hr_second_pass_steps"]
        req.hr_resize_x, req.hr_resize_y = data["hr_resize_x"], data["hr_resize_y"]
        req.hr_sampler_name = data["hr_sampler_name"]
        req.hr_scheduler = data["hr_scheduler"]
        req.hr_prompt, req.hr_negative_prompt = data["hr_prompt"], data["hr_negative_prompt"]
    return req


def _response(processed: Any, payload: models._Common, send_images: bool) -> models.TextToImageResponse:
    import json

    encoded = [image_files.encode_image_base64(img, "png", text) for img, text in zip(processed.images, processed.infotexts)] if send_images else []
    params = payload.model_dump()
    if isinstance(payload, models.StableDiffusionImg2ImgProcessingAPI) and not payload.include_init_images:
        params["init_images"] = None
        params["mask"] = None
    return models.TextToImageResponse(images=encoded, parameters=params, info=json.dumps(processed.info, default=lambda o: None))


def create_router(engine: Any) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1")

    @router.post("/txt2img", response_model=models.TextToImageResponse)
    def text2imgapi(payload: models.StableDiffusionTxt2ImgProcessingAPI) -> models.TextToImageResponse:
        req = to_generation_request(payload, img2img=False)
        processed = engine.generate(req)
        return _response(processed, payload, payload.send_images)

    @router.post("/img2img", response_model=models.ImageToImageResponse)
    def img2imgapi(payload: models.StableDiffusionImg2ImgProcessingAPI) -> models.TextToImageResponse:
        req = to_generation_request(payload, img2img=True)
        processed = engine.generate(req)
        return _response(processed, payload, payload.send_images)

    @router.get("/progress")
    def progressapi(skip_current_image: bool = False) -> dict[str, Any]:
        state = engine.state
        progress, eta = state.progress()
        current = None
        if not skip_current_image and state.current_preview is not None:
            current = image_files.encode_image_base64(state.current_preview, "png", None)
        return {"progress": progress, "eta_relative": eta, "state": state.dict(), "current_image": current, "textinfo": state.textinfo}

    @router.post("/interrupt")
    def interruptapi() -> dict[str, Any]:
        engine.state.interrupt()
        return {}

    @router.post("/skip")
    def skipapi() -> None:
        engine.state.skip()

    networks = engine.networks

    @router.get("/loras")
    def get_loras() -> list[dict[str, Any]]:
        return [{"name": e.name, "alias": e.alias, "path": str(e.path), "metadata": e.metadata} for e in networks.loras.items()]

    @router.post("/refresh-loras")
    def refresh_loras() -> None:
        networks.refresh(["lora"])

    @router.get("/hypernetworks")
    def get_hypernetworks() -> list[dict[str, Any]]:
        return [{"name": e.name, "path": str(e.path)} for e in networks.hypernetworks.items()]

    @router.get("/embeddings")
    def get_embeddings() -> dict[str, dict[str, Any]]:
        loaded, skipped = networks.embeddings_report(engine.model is not None)
        return {"loaded": {e.name: _embedding_item(e) for e in loaded}, "skipped": {e.name: _embedding_item(e) for e in skipped}}

    @router.post("/refresh-embeddings")
    def refresh_embeddings() -> None:
        networks.refresh(["embedding"])
        if engine.model is not None:
            networks.prepare_embeddings(force=True)

    return router


def _embedding_item(embedding: Any) -> dict[str, Any]:
    return {"step": embedding.step, "sd_checkpoint": embedding.sd_checkpoint,
            "sd_checkpoint_name": embedding.sd_checkpoint_name, "shape": embedding.shape, "vectors": embedding.vectors}


def mount_api(app: FastAPI, engine: Any) -> None:
    install_error_handlers(app)
    app.include_router(create_router(engine))
