"""``GET /file=<path>``: the server's route onto :mod:`modules.engine.file_access` (which files may be served)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modules.engine.file_access import FileRefused, find_output_image

if TYPE_CHECKING:
    from modules.engine.engine import Engine


def add_file_routes(app: Any, engine: Engine) -> None:
    """Add ``/file=`` to a FastAPI app; call before mounting anything at ``/``."""
    from fastapi.responses import FileResponse, PlainTextResponse

    def serve(lookup, raw: str):
        try:
            path = lookup(engine, raw)
        except FileRefused as e:
            text = "Forbidden" if e.status == 403 else "Not found"
            return PlainTextResponse(text, status_code=e.status)
        # The file may change (a new preview); browsers revalidate with the mtime in the URL.
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    @app.get("/file={path:path}", include_in_schema=False)
    def output_file(path: str):
        return serve(find_output_image, path)
