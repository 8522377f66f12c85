"""Errors of extension code that reach a door: a selectable script whose ``run`` raised."""
from __future__ import annotations


class ScriptError(RuntimeError):
    """The selected script ``title`` (of extension ``extension``, None for the program's own) raised ``cause``.

    Doors answer it as an error of that script (the API: HTTP 500 in A1111's error shape naming the script),
    never as a raw traceback; the app and the next request are unaffected."""

    def __init__(self, title: str, extension: str | None, cause: BaseException) -> None:
        self.title = title
        self.extension = extension
        self.cause = cause
        owner = f" (extension {extension})" if extension else ""
        super().__init__(f"script {title!r}{owner} failed: {type(cause).__name__}: {cause}")
