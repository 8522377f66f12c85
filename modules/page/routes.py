"""HTTP routes the page's own scripts call: its static JS/CSS and the prompt token counter.

The token counter is a plain route rather than a Gradio event so that typing never waits behind a
running generation in Gradio's queue, and so the count stays a pure function of the text.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules.core import request_bounds, token_counter
from modules.engine.text_chunks import CHUNK_LENGTH, target_token_count

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

ROUTE_PREFIX = "/sd_ui"
REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_FILES = {
    "ui.js": (REPO_ROOT / "javascript" / "ui.js", "text/javascript"),
    "ui.css": (REPO_ROOT / "html" / "ui.css", "text/css"),
}
MAX_PROMPT_CHARS = 100_000


def count_tokens(engine: Engine, prompt: str, steps: int) -> dict[str, Any]:
    """``{"used", "target", "text"}`` for the prompt box counter, as the loaded text encoder will chunk it."""
    conditioner = getattr(engine, "conditioner", None)
    if conditioner is None:
        # No model loaded yet: count words as tokens would overstate; say so instead of guessing.
        return {"used": None, "target": CHUNK_LENGTH, "text": f"?/{CHUNK_LENGTH}"}
    try:  # a prompt beyond the request bounds is refused by generation too: not worth counting
        request_bounds.check_prompt(prompt)
    except request_bounds.BoundError as exc:
        return {"used": None, "target": CHUNK_LENGTH, "text": "?", "error": f"prompt {exc}"}
    strip = bool(engine.options.get("enable_prompt_comments"))
    used, target = token_counter.count_prompt_tokens(prompt, steps, conditioner.count_tokens, strip_prompt_comments=strip)
    target = max(target, target_token_count(used, CHUNK_LENGTH))
    return {"used": used, "target": target, "text": token_counter.format_token_count(used, target)}


def static_url(name: str) -> str:
    path = STATIC_FILES[name][0]
    try:
        version = int(path.stat().st_mtime)
    except OSError:
        version = 0
    return f"{ROUTE_PREFIX}/static/{name}?v={version}"


def head_html() -> str:
    return f'<link rel="stylesheet" href="{static_url("ui.css")}"><script src="{static_url("ui.js")}"></script>'


def mount_ui_routes(app: Any, engine: Engine) -> None:
    """Add ``/sd_ui/*`` ahead of any catch-all mount (Gradio's at "/")."""
    from fastapi import APIRouter, Body
    from fastapi.responses import FileResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    router = APIRouter(prefix=ROUTE_PREFIX, include_in_schema=False)  # page internals, not the public API

    @router.post("/token-count")
    async def token_count(body: Any = Body(...)) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("prompt", ""), str):
            return JSONResponse({"error": "prompt: must be a string"}, status_code=422)
        prompt = body.get("prompt", "")[:MAX_PROMPT_CHARS]
        try:
            steps = max(1, min(int(body.get("steps") or 20), 500))
        except (TypeError, ValueError):
            return JSONResponse({"error": "steps: must be an integer"}, status_code=422)
        try:
            result = await run_in_threadpool(count_tokens, engine, prompt, steps)
        except ValueError as exc:  # a prompt the parser rejects: show it, the box keeps working
            return JSONResponse({"used": None, "target": CHUNK_LENGTH, "text": "?", "error": str(exc)})
        return JSONResponse(result)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        found = STATIC_FILES.get(name)
        if found is None or not found[0].is_file():
            return JSONResponse({"error": f"no static file {name!r}"}, status_code=404)
        return FileResponse(found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    before = len(app.router.routes)
    app.include_router(router)
    added = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[0:0] = added
