"""A scoped compatibility layer for the Gradio 3.41 calls A1111 extensions make (A1111 runs Gradio 3; this app
Gradio 6), applied only while extension code builds its UI (:func:`extension_ui`):

* ``_js=`` on events -> ``js=``;
* unknown constructor keywords (``source=``/``tool=`` on images, ``max_rows=`` on dataframes, ``default=``) are
  translated where Gradio 6 has a counterpart (``source="upload"`` -> ``sources=["upload"]``,
  ``default=`` -> ``value=``) and otherwise dropped with a debug line;
* ``component.style(...)`` returns the component unchanged;
* ``gr.Box`` is ``gr.Group``.

``gr.X.update(...)`` / ``component.update(...)`` run in event handlers, long after the UI is built, so they are
installed once for good (they only add a name Gradio 6 lacks: ``gr.update`` with the same arguments).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
from typing import Any, Iterator

log = logging.getLogger(__name__)

_lock = threading.RLock()
_depth = 0
_saved: list[tuple[Any, str, Any, bool]] = []  # (owner, name, previous value, had it in __dict__)
_updates_installed = False


def _all_block_classes() -> list[type]:
    import gradio as gr

    seen: list[type] = []
    todo = [gr.blocks.Block]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def _patch(owner: Any, name: str, value: Any) -> None:
    had = name in vars(owner) if isinstance(owner, type) else hasattr(owner, name)
    _saved.append((owner, name, getattr(owner, name, None), had))
    setattr(owner, name, value)


def _event_wrapper(trigger: Any) -> Any:
    @functools.wraps(trigger)
    def event(*args: Any, **kwargs: Any) -> Any:
        if "_js" in kwargs:
            js = kwargs.pop("_js")
            kwargs.setdefault("js", js)
        return trigger(*args, **kwargs)
    event.__gradio3_compat__ = True
    return event


def _translate_kwargs(cls: type, params: set[str], kwargs: dict[str, Any]) -> None:
    if "default" in kwargs and "default" not in params:
        kwargs.setdefault("value", kwargs.pop("default"))
    if "source" in kwargs and "source" not in params and "sources" in params:
        source = kwargs.pop("source")
        kwargs.setdefault("sources", [source] if isinstance(source, str) else source)
    for key in [k for k in kwargs if k not in params]:
        log.debug("Gradio 3 argument %s=%r of %s dropped (Gradio 6 has no such argument)", key, kwargs[key], cls.__name__)
        kwargs.pop(key)


def _init_wrapper(cls: type, init: Any) -> Any:
    try:
        sig = inspect.signature(init)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    params = set(sig.parameters)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if type(self) is cls:  # a subclass's own __init__ passes on what it was given: translate once, at the top
            _translate_kwargs(cls, params, kwargs)
        init(self, *args, **kwargs)
    return __init__


def _dependency_init(init: Any) -> Any:
    """``event(...).then(_js=...)``: the chained listeners are made per Dependency object."""
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for name in ("then", "success", "failure"):
            chained = getattr(self, name, None)
            if callable(chained):
                setattr(self, name, _event_wrapper(chained))
    return __init__


def _style(self: Any, *args: Any, **kwargs: Any) -> Any:
    return self


def _install_updates() -> None:
    """``gr.Textbox.update(value=...)`` and ``component.update(...)``: Gradio 3's names for ``gr.update``."""
    global _updates_installed
    if _updates_installed:
        return
    import gradio as gr

    def update(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if args and not isinstance(args[0], gr.blocks.Block):
            kwargs.setdefault("value", args[0])
        return gr.update(**kwargs)

    for cls in _all_block_classes():
        if "update" not in vars(cls) and not hasattr(cls, "update"):
            cls.update = staticmethod(update)
    _updates_installed = True


def _apply() -> None:
    import gradio as gr

    _install_updates()
    if not hasattr(gr, "Box"):
        _patch(gr, "Box", gr.Group)
    _patch(gr.events.Dependency, "__init__", _dependency_init(gr.events.Dependency.__init__))
    for cls in _all_block_classes():
        for event in getattr(cls, "EVENTS", []) or []:
            name = event if isinstance(event, str) else getattr(event, "event_name", None)
            trigger = vars(cls).get(name) if name else None
            if callable(trigger) and not getattr(trigger, "__gradio3_compat__", False):
                _patch(cls, name, _event_wrapper(trigger))
        if "style" not in vars(cls) and not hasattr(cls, "style"):
            _patch(cls, "style", _style)
        init = vars(cls).get("__init__")
        if init is not None and cls.__module__.startswith("gradio."):
            wrapped = _init_wrapper(cls, init)
            if wrapped is not None:
                _patch(cls, "__init__", wrapped)


def _restore() -> None:
    while _saved:
        owner, name, previous, had = _saved.pop()
        if had:
            setattr(owner, name, previous)
        else:
            try:
                delattr(owner, name)
            except AttributeError:
                pass


@contextlib.contextmanager
def extension_ui() -> Iterator[None]:
    """Gradio 3 calls work inside this block (nested and concurrent uses share one patch)."""
    global _depth
    with _lock:
        if _depth == 0:
            _apply()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()
