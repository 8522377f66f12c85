"""Server control (/sdapi/v1/server-*, with --api-server-stop) and the UI-support routes (/internal/*).

Server control acts through callables the launcher puts on ``app.state``:
``request_shutdown()`` (make uvicorn exit cleanly), ``request_restart()`` (optional), ``request_kill()``
(optional; without it the process exits at once, as A1111's kill does).
"""
from __future__ import annotations

import base64
import io
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from modules.server.api import models
from modules.server.api.tasks import TaskTracker

if TYPE_CHECKING:
    from modules.engine.engine import Engine


def add_server_routes(router: APIRouter, engine: Engine) -> None:
    if not getattr(engine.args, "api_server_stop", False):
        return  # A1111 has no such routes without the flag (404)

    @router.post("/server-kill", response_class=PlainTextResponse)
    def kill_webui(request: Request) -> str:
        callback = getattr(request.app.state, "request_kill", None)
        if callable(callback):
            callback()
        else:  # let the answer leave first
            threading.Timer(0.2, os._exit, (0,)).start()
        return "Killing."

    @router.post("/server-restart", response_class=PlainTextResponse)
    def restart_webui(request: Request) -> str:
        callback = getattr(request.app.state, "request_restart", None)
        if not callable(callback):
            raise HTTPException(status_code=501, detail="this server was not started in a restartable way")
        callback()
        return "Restarting."

    @router.post("/server-stop", response_class=PlainTextResponse)
    def stop_webui(request: Request) -> str:
        callback = getattr(request.app.state, "request_shutdown", None)
        if not callable(callback):
            raise HTTPException(status_code=501, detail="stopping is not available in this launch")
        engine.state.interrupt()  # a running generation ends at its next step
        callback()
        return "Stopping."


def _preview_data_uri(image: Any, fmt: str) -> str:
    fmt = fmt if fmt in ("png", "jpeg", "webp") else "png"
    buf = io.BytesIO()
    save_as = image.convert("RGB") if fmt == "jpeg" else image
    save_as.save(buf, format=fmt.upper())
    return f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def create_internal_router(engine: Engine, tasks: TaskTracker) -> APIRouter:
    router = APIRouter(prefix="/internal")

    @router.get("/ping")
    async def ping() -> dict[str, Any]:
        return {}

    @router.get("/pending-tasks", response_model=models.PendingTasksResponse)
    async def pending_tasks() -> dict[str, Any]:
        pending = tasks.pending(engine.state.running_ids())
        return {"size": len(pending), "tasks": pending}

    @router.post("/progress", response_model=models.InternalProgressResponse)
    async def progressapi(req: models.InternalProgressRequest) -> models.InternalProgressResponse:
        state = engine.state.view(req.id_task)  # with several replicas, the state of this task's job
        running = state.id_task
        active = req.id_task is not None and (req.id_task == running or tasks.is_running(req.id_task))
        pending = tasks.pending(engine.state.running_ids())
        queued = req.id_task in pending
        completed = req.id_task is not None and tasks.is_finished(req.id_task)
        if not active:
            textinfo = f"In queue: {pending.index(req.id_task) + 1}/{len(pending)}" if queued else "Waiting..."
            return models.InternalProgressResponse(active=False, queued=queued, completed=completed, id_live_preview=-1,
                                                   textinfo=textinfo)
        # A1111's formula here has no 0.01 head start (unlike /sdapi/v1/progress).
        progress = 0.0
        if state.job_count > 0:
            progress += state.job_no / state.job_count
            if state.sampling_steps > 0:
                progress += state.sampling_step / state.sampling_steps / state.job_count
        progress = min(progress, 1.0)
        started = state.time_start
        eta = None
        if progress > 0 and started is not None:
            elapsed = time.time() - started
            eta = elapsed / progress - elapsed
        live_preview, preview_id = None, req.id_live_preview
        preview, step = state.current_preview, state.current_preview_step
        if req.live_preview and engine.options.get("live_previews_enable") and preview is not None and step >= 0:
            new_id = state.job_no * 100_000 + step  # changes with every new preview of the task
            if new_id != req.id_live_preview:
                fmt = str(engine.options.get("live_previews_image_format") or "png")
                live_preview = await run_in_threadpool(_preview_data_uri, preview, fmt)
                preview_id = new_id
        return models.InternalProgressResponse(active=True, queued=False, completed=False, progress=progress, eta=eta,
                                               live_preview=live_preview, id_live_preview=preview_id,
                                               textinfo=state.textinfo, sampling_step=state.sampling_step,
                                               sampling_steps=state.sampling_steps, job_no=state.job_no,
                                               job_count=state.job_count)

    return router
