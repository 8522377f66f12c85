"""A bound on how many values a JSON request body may hold, checked before anything parses it.

FastAPI parses and validates a body on the event loop, and Python's JSON parser holds the GIL: a 60 MB body of
20 million numbers froze every other request (``/progress`` included) for many seconds. Counting the commas of
the raw bytes is a few milliseconds for the largest body the size limit lets in, and no request of this API
needs more than :data:`MAX_JSON_VALUES` values (images are single strings). Commas inside strings count too,
so the bound errs only on the safe side.
"""
from __future__ import annotations

from typing import Any

MAX_JSON_VALUES = 1_000_000


class JsonValueCountGuard:
    def __init__(self, app: Any, max_values: int = MAX_JSON_VALUES) -> None:
        self.app = app
        self.max_values = int(max_values)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        values = body.count(b",") + 1
        if values > self.max_values:
            text = (f'{{"error": "HTTPException", "detail": "the JSON body holds about {values} values; the limit is '
                    f'{self.max_values}", "body": "", "errors": ""}}').encode()
            await send({"type": "http.response.start", "status": 413, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(text)).encode())]})
            await send({"type": "http.response.body", "body": text})
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)


def _is_json(scope: dict) -> bool:
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-type":
            return b"json" in value.lower()
    return False


def _replay(messages: list[dict], receive: Any) -> Any:
    """The buffered messages, then the real ``receive`` (a streaming answer waits on it for the disconnect)."""
    pending = list(messages)

    async def replay() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
