"""Refuse request paths no route can use: a NUL or other control character (``%00`` in the URL).

Gradio's ``/gradio_api/proxy=`` and ``file=`` routes hand such a path to code that raises (a 500); here it
is the client's mistake, answered 400 before any route sees it.
"""
from __future__ import annotations

import re
from typing import Any

_BAD = re.compile(r"[\x00-\x1f\x7f]")
_BAD_ENCODED = re.compile(rb"%(0[0-9a-f]|1[0-9a-f]|7f)", re.IGNORECASE)


class ControlCharacterPathGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope.get("path", "")
            raw = scope.get("raw_path") or b""
            if _BAD.search(path) or _BAD_ENCODED.search(raw):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = b'{"error": "HTTPException", "detail": "control characters are not allowed in a path", ' \
                       b'"body": "", "errors": ""}'
                await send({"type": "http.response.start", "status": 400, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
