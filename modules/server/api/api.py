"""A1111's HTTP API (/sdapi/v1, spec §9) as a thin door onto the Engine: no generation logic here.

``mount_api(app, host)`` (a :class:`~modules.scripting.host.ScriptHost`) adds the error handlers (A1111's error JSON; 422 for anything the client got
wrong), the ``X-Process-Time`` header, ``--api-log`` and every route (``--api-auth`` is checked in front
of the whole app by ``modules.server_auth``). The routes of this file run generations and
postprocessing; listings, settings and model management are in ``routes_info``, the server-control and
UI-support routes in ``routes_internal``.
"""
from __future__ import annotations

import datetime
import errno
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from modules.core import image_files
from modules.core import infotext
from modules.engine import postprocessing
from modules.server.api import convert, models, routes_info, routes_internal, routes_train
from modules.server.api.json_values import printable
from modules.server.api.tasks import TaskTracker
from modules.core.request import RequestError
from modules.engine.engine import ModelLoadError
from modules.models.safe_load import CheckpointLoadError
from modules.scripting.errors import ScriptError

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# Longest text an error answer echoes from a request (the rest is cut, with its length said).
ECHO_LIMIT = 2000

log = logging.getLogger(__name__)


# ---- errors, middleware ----------------------------------------------------------------------------

def _safe_json(value: Any) -> Any:
    # An error may echo what the client sent: NaN, a lone surrogate or bytes must not break the answer.
    try:
        return printable(jsonable_encoder(value), max_text=ECHO_LIMIT)
    except Exception:
        return printable(str(value), max_text=ECHO_LIMIT)


def _error(status: int, exc: Exception, detail: Any = "", headers: dict[str, str] | None = None) -> JSONResponse:
    # A1111's error body shape.
    body = {"error": type(exc).__name__, "detail": _safe_json(detail), "body": "",
            "errors": printable(str(exc), max_text=ECHO_LIMIT)}
    return JSONResponse(status_code=status, content=body, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, exc, exc.errors())

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(422, exc, exc.message if not exc.field else f"{exc.field}: {exc.message}")

    @app.exception_handler(CheckpointLoadError)
    @app.exception_handler(ModelLoadError)
    async def _model_error(request: Request, exc: Exception) -> JSONResponse:
        # The client chose a checkpoint that cannot be used; the model that was loaded stays loaded.
        return _error(422, exc, f"checkpoint cannot be loaded: {exc}")

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if exc.errno in DISK_FULL:
            return _error(507, exc, f"not enough disk space: {exc}")
        log.error("API error on %s: %s", request.url.path, exc)
        return _error(500, exc, f"server-side file error: {exc}")
    @app.exception_handler(ScriptError)
    async def _script_error(request: Request, exc: ScriptError) -> JSONResponse:
        # Handled here (not by the catch-all below), so no raw "Exception in ASGI application" traceback.
        return _error(500, exc, f"{exc.title}: {type(exc.cause).__name__}: {exc.cause}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc, exc.detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API error on %s", request.url.path)
        return _error(500, exc, "")


def _install_middleware(app: FastAPI, api_log: bool) -> None:
    @app.middleware("http")
    async def _process_time(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        response = await call_next(request)
        duration = time.perf_counter() - start
        response.headers["X-Process-Time"] = f"{duration:.4f}"
        if api_log and request.url.path.startswith("/sdapi"):
            client = f"{request.client.host}:{request.client.port}" if request.client else ""
            log.info("API %s %s %s/%s %s %s %s %.4f", datetime.datetime.now(), response.status_code, request.url.scheme,
                     request.scope.get("http_version", ""), request.method, request.url.path, client, duration)
        return response


# ---- generation ------------------------------------------------------------------------------------

def check_scripts(host: "ScriptHost", payload: models._Common, *, img2img: bool) -> None:
    """``script_name`` / ``alwayson_scripts`` must name scripts of the tab's runner (the runner's own check,
    made before the request waits for the queue)."""
    if payload.script_name or payload.alwayson_scripts:
        try:
            host.scripts.runner(img2img).check_script_names(payload.script_name, payload.alwayson_scripts)
        except RequestError as exc:  # A1111's detail is the bare message
            raise HTTPException(status_code=422, detail=exc.message) from None


def _generate(host: "ScriptHost", tasks: TaskTracker, payload: models._Common, *, img2img: bool) -> models.TextToImageResponse:
    engine = host.engine
    check_scripts(host, payload, img2img=img2img)
    payload, from_infotext = convert.apply_infotext(engine, payload)
    task_id = payload.force_task_id or convert.create_task_id("img2img" if img2img else "txt2img")
    req = convert.to_generation_request(engine, payload, img2img=img2img, task_id=task_id, from_infotext=from_infotext)
    req.script_name = payload.script_name or None
    req.script_args = list(payload.script_args or [])
    req.alwayson_scripts = dict(payload.alwayson_scripts or {})
    tasks.add(task_id)
    try:
        processed = host.generate(req)
    finally:
        tasks.finish(task_id)
    images = [convert.encode_image(engine, img, text) for img, text in zip(processed.images, processed.infotexts)] \
        if payload.send_images else []
    params = payload.model_dump()
    if img2img and not getattr(payload, "include_init_images", False):
        params["init_images"] = None
        params["mask"] = None
    return models.TextToImageResponse(images=images, parameters=params,
                                      info=json.dumps(processed.info, default=lambda o: None))


def _extras_params(payload: models.ExtrasBaseRequest) -> postprocessing.ExtrasParams:
    return postprocessing.ExtrasParams(
        resize_mode=payload.resize_mode, upscaling_resize=payload.upscaling_resize,
        upscaling_resize_w=payload.upscaling_resize_w, upscaling_resize_h=payload.upscaling_resize_h,
        upscaling_crop=payload.upscaling_crop, upscaler_1=payload.upscaler_1, upscaler_2=payload.upscaler_2,
        extras_upscaler_2_visibility=payload.extras_upscaler_2_visibility, gfpgan_visibility=payload.gfpgan_visibility,
        codeformer_visibility=payload.codeformer_visibility, codeformer_weight=payload.codeformer_weight,
        upscale_first=payload.upscale_first)


def _json_friendly(items: dict[str, Any]) -> dict[str, Any]:
    plain = (str, int, float, bool, type(None))

    def fix(v: Any) -> Any:
        if isinstance(v, plain):
            return v
        if isinstance(v, (list, tuple)) and all(isinstance(x, plain) for x in v):
            return list(v)
        return str(v)

    return {str(k): fix(v) for k, v in items.items()}


def create_router(host: "ScriptHost", tasks: TaskTracker) -> APIRouter:
    engine = host.engine
    # --api-auth is enforced in front of the whole app (modules.server_auth), not per route.
    router = APIRouter(prefix="/sdapi/v1")

    @router.post("/txt2img", response_model=models.TextToImageResponse)
    def text2imgapi(payload: models.StableDiffusionTxt2ImgProcessingAPI) -> models.TextToImageResponse:
        return _generate(host, tasks, payload, img2img=False)

    @router.post("/img2img", response_model=models.ImageToImageResponse)
    def img2imgapi(payload: models.StableDiffusionImg2ImgProcessingAPI) -> models.TextToImageResponse:
        return _generate(host, tasks, payload, img2img=True)

    @router.post("/extra-single-image", response_model=models.ExtrasSingleImageResponse)
    def extras_single_image_api(payload: models.ExtrasSingleImageRequest) -> models.ExtrasSingleImageResponse:
        image = convert.decode_image(payload.image, "image")
        result = postprocessing.run_postprocessing(engine, [(image, None)], _extras_params(payload),
                                                   scripts=host.extras_scripts())
        encoded = convert.encode_image(engine, result.images[0]) if result.images else None
        return models.ExtrasSingleImageResponse(html_info=result.html_info, image=encoded)

    @router.post("/extra-batch-images", response_model=models.ExtrasBatchImagesResponse)
    def extras_batch_images_api(payload: models.ExtrasBatchImagesRequest) -> models.ExtrasBatchImagesResponse:
        convert.check_image_count(len(payload.imageList), "imageList")
        inputs = [(convert.decode_image(item.data, f"imageList[{i}].data"), item.name or None)
                  for i, item in enumerate(payload.imageList)]
        if not inputs:
            return models.ExtrasBatchImagesResponse(html_info="", images=[])
        result = postprocessing.run_postprocessing(engine, inputs, _extras_params(payload), scripts=host.extras_scripts())
        return models.ExtrasBatchImagesResponse(html_info=result.html_info,
                                                images=[convert.encode_image(engine, img) for img in result.images])

    @router.post("/png-info", response_model=models.PNGInfoResponse)
    def pnginfoapi(payload: models.PNGInfoRequest) -> models.PNGInfoResponse:
        if not payload.image.strip():
            raise RequestError("image", "no image given")
        image = convert.decode_image(payload.image, "image")
        geninfo, items = image_files.read_info_from_image(image)
        geninfo = geninfo or ""
        opts = engine.options
        styles = engine.styles.styles if opts.get("infotext_styles") != "Ignore" else None
        params = infotext.parse_generation_parameters(geninfo, opts.get("infotext_skip_pasting"), styles=styles)
        return models.PNGInfoResponse(info=geninfo, items=_json_friendly(items), parameters=_json_friendly(params))

    @router.post("/interrogate", response_model=models.InterrogateResponse)
    def interrogateapi(payload: models.InterrogateRequest) -> models.InterrogateResponse:
        if not payload.image:
            raise RequestError("image", "Image not found")
        convert.decode_image(payload.image, "image")
        if payload.model in ("clip", "deepdanbooru"):
            raise HTTPException(status_code=501, detail=f"Interrogation with {payload.model!r} is not available in this web UI")
        raise HTTPException(status_code=404, detail="Model not found")

    # Quick, non-blocking routes are async: they stay answerable while every worker thread waits for the queue.
    @router.get("/progress", response_model=models.ProgressResponse)
    async def progressapi(skip_current_image: bool = False) -> models.ProgressResponse:
        state = engine.state
        progress, eta = state.progress()
        preview = state.current_preview
        current = None
        if state.job_count > 0 and not skip_current_image and preview is not None:
            current = await run_in_threadpool(convert.encode_image, engine, preview)
        return models.ProgressResponse(progress=progress, eta_relative=eta, state=state.dict(), current_image=current,
                                       textinfo=state.textinfo)

    @router.post("/interrupt")
    async def interruptapi() -> dict[str, Any]:
        engine.state.interrupt()
        return {}

    @router.post("/skip")
    async def skipapi() -> None:
        engine.state.skip()

    routes_info.add_routes(router, host)
    routes_train.add_training_routes(router, engine, tasks)
    routes_internal.add_server_routes(router, engine)
    return router


def mount_api(app: FastAPI, host: "ScriptHost") -> None:
    """Add /sdapi/v1 (and the /internal UI-support routes) to ``app``.

    ``app.state.request_shutdown`` / ``request_restart`` / ``request_kill``, set by the launcher, are what
    /server-stop, /server-restart and /server-kill call (with ``--api-server-stop``)."""
    install_error_handlers(app)
    _install_middleware(app, bool(getattr(host.engine.args, "api_log", False)))
    app.state.task_tracker = host.engine.tasks
    app.include_router(create_router(host, task_tracker(app)))
    mount_internal_routes(app, host.engine)


def task_tracker(app: FastAPI) -> TaskTracker:
    """The app's TaskTracker, its Engine's (the UI door and extensions add their tasks to the same one)."""
    tracker = getattr(app.state, "task_tracker", None)
    if tracker is None:
        tracker = app.state.task_tracker = TaskTracker()
    return tracker


def mount_internal_routes(app: FastAPI, engine: Engine) -> None:
    """/internal/ping, /internal/progress, /internal/pending-tasks; once per app (the UI may call this too)."""
    if getattr(app.state, "internal_routes_mounted", False):
        return
    app.state.internal_routes_mounted = True
    if getattr(app.state, "task_tracker", None) is None:
        app.state.task_tracker = engine.tasks
    app.include_router(routes_internal.create_internal_router(engine, task_tracker(app)))
