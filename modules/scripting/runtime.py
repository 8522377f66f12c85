"""The one place where A1111's module-level globals (``shared.opts``, ``shared.sd_model``, ``devices.device``...)
find the running Engine.

A1111 extensions read globals; this app has none. The top-level facades (``modules/shared.py`` and friends)
resolve each name when it is read (module ``__getattr__``) through :func:`current`, which answers the Engine
made current by :func:`using` (a context variable: a test or a second Engine in the same process) or else the
Engine bound by the composition root (``webui.build_engine``) or by the last ``ScriptManager.load``.
The core never reads this module.
"""
from __future__ import annotations

import contextlib
import threading
import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from modules.engine.engine import Engine

_lock = threading.Lock()
_bound: Any = None
_scoped: ContextVar[Any] = ContextVar("a1111_runtime_engine", default=None)


class NoEngineError(RuntimeError):
    """An A1111 global was read before any Engine exists (e.g. at the top of a module imported by hand)."""


def bind(engine: "Engine") -> None:
    """Make ``engine`` what the facades answer (the composition root calls this once)."""
    global _bound
    with _lock:
        _bound = engine


def unbind(engine: "Engine") -> None:
    global _bound
    with _lock:
        if _bound is engine:
            _bound = None


@contextlib.contextmanager
def using(engine: "Engine") -> Iterator[Any]:
    """Answer ``engine`` in this thread / task for the duration of the block (loading its scripts, a test)."""
    token = _scoped.set(engine)
    try:
        yield engine
    finally:
        _scoped.reset(token)


def current(required: bool = True) -> Any:
    engine = _scoped.get()
    if engine is None:
        engine = _bound
    if engine is None and required:
        raise NoEngineError("no Engine is running yet: A1111's shared state exists only inside the app "
                            "(read it inside a function, not at import time, or start the app first)")
    return engine


# --- what A1111's globals hold per Engine (the settings view, the options added through templates...) -----
_per_engine: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def engine_state(engine: "Engine") -> dict[str, Any]:
    """A dict kept for as long as ``engine`` lives, for the facades' per-Engine objects."""
    with _lock:
        state = _per_engine.get(engine)
        if state is None:
            state = _per_engine[engine] = {}
        return state


# The folder of the script file being imported (A1111's ``scripts.basedir()`` answers it at import time).
loading_basedir: ContextVar[str | None] = ContextVar("a1111_loading_basedir", default=None)


@contextlib.contextmanager
def loading(basedir: str) -> Iterator[None]:
    token = loading_basedir.set(basedir)
    try:
        yield
    finally:
        loading_basedir.reset(token)


def host(engine: "Engine" = None) -> Any:
    """The script layer (scripts, extensions, callbacks) of ``engine`` or of the current Engine."""
    from modules.scripting.host import ScriptHost

    return ScriptHost.for_engine(engine if engine is not None else current())
