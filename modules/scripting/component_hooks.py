"""A1111 calls extensions for every component its page builds: ``script_callbacks.on_before_component`` /
``on_after_component`` and each script's ``before_component`` / ``after_component`` (with the component's
constructor keywords: ``elem_id``, ``label``...). Extensions find the page's controls this way (the
aspect-ratio helper takes the width and height sliders).

:func:`component_callbacks` does the same while the page is built: it wraps Gradio's component constructor
for the duration of the block."""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
from typing import Any, Iterator

log = logging.getLogger(__name__)
_local = threading.local()


def _scripts(host: Any) -> list[Any]:
    manager = host.scripts
    seen, out = set(), []
    for runner in (manager.txt2img, manager.img2img):
        for script in runner.scripts:
            if id(script) not in seen and _overrides(script):
                seen.add(id(script))
                out.append(script)
    return out


def _overrides(script: Any) -> bool:
    from modules.scripting.scripts import Script

    return (type(script).before_component is not Script.before_component
            or type(script).after_component is not Script.after_component)


def _call(host: Any, scripts: list[Any], kind: str, component: Any, kwargs: dict[str, Any]) -> None:
    for entry in host.callbacks.entries(kind):
        try:
            entry.fn(component, **kwargs)
        except Exception as exc:  # noqa: BLE001
            host.callbacks._record(entry, exc)
    for script in scripts:
        try:
            getattr(script, kind)(component, **kwargs)
        except Exception as exc:  # noqa: BLE001 - an extension's hook never breaks the page
            host.scripts.record_hook_error(script, kind, exc)


@contextlib.contextmanager
def component_callbacks(host: Any) -> Iterator[None]:
    """``host``: the ScriptHost whose scripts and callbacks get the hooks."""
    import gradio as gr

    scripts = _scripts(host)
    if not scripts and not host.callbacks.has("before_component") and not host.callbacks.has("after_component"):
        yield
        return
    base = gr.components.Component
    original = base.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        depth = getattr(_local, "depth", 0)
        if depth:  # a component made inside another one's constructor or hook: no hooks for it
            return original(self, *args, **kwargs)
        _local.depth = depth + 1
        try:
            _call(host, scripts, "before_component", self, kwargs)
            original(self, *args, **kwargs)
            _call(host, scripts, "after_component", self, kwargs)
        finally:
            _local.depth = depth

    base.__init__ = __init__
    try:
        yield
    finally:
        base.__init__ = original
