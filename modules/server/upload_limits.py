"""A bound on request body sizes, for the API and the Gradio uploads alike.

A1111 has no launch flag for this, so the limit is the one constant below. 64 MiB holds a
base64-encoded 4096x4096 PNG with room to spare (about 33 MiB for a noisy one), and several
typical img2img/extras images in one request.

The pure ASGI middleware refuses a body whose ``Content-Length`` is over the limit before reading
any of it, and counts the bytes of every body (chunked uploads included) as the app reads them:
once past the limit the app gets a disconnect, whatever it answers is dropped, and the client gets
413 instead.
"""
from __future__ import annotations

from typing import Any

MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` when the body passes the limit."""


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length header as a number; None when absent or not a number."""
    for name, value in headers:
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


class BodySizeLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int = MAX_REQUEST_BODY_BYTES):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope.get("headers") or [])
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return

        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> dict:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal response_started
            if exceeded:
                return  # the app's own answer to a cut-off body (400, 500 ...) is replaced by 413
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not response_started:
            await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        body = f"Request body too large (limit {self.max_bytes} bytes)".encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
