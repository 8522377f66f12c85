"""``GET /file=<path>``: the server's route onto :mod:`modules.engine.file_access` (which files may be served),
then, when given, a second lookup (the extensions' data files, :mod:`modules.scripting.extension_files`)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modules.engine.file_access import FileRefused, find_output_image

if TYPE_CHECKING:
    from modules.engine.engine import Engine


def add_file_routes(app: Any, engine: Engine, fallback: Any = None) -> None:
    """Add ``/file=`` to a FastAPI app; call before mounting anything at ``/``. ``fallback(raw) -> Path`` is
    asked when the path is not an output image (raising FileRefused when it is not its file either)."""
    from fastapi.responses import FileResponse, PlainTextResponse

    def serve(lookup, raw: str):
        try:
            path = lookup(engine, raw)
        except FileRefused as e:
            text = "Forbidden" if e.status == 403 else "Not found"
            return PlainTextResponse(text, status_code=e.status)
        # The file may change (a new preview); browsers revalidate with the mtime in the URL.
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    def lookup(engine: Engine, raw: str):
        try:
            return find_output_image(engine, raw)
        except FileRefused as first:
            if fallback is None:
                raise
            try:
                return fallback(raw)
            except FileRefused:
                raise first from None

    @app.get("/file={path:path}", include_in_schema=False)
    def output_file(path: str):
        return serve(lookup, path)
