"""A1111's ``call_queue`` wrappers for extension page callbacks: a GPU call waits for the running Engine's queue
turn (one generation at a time); an exception becomes a logged error and an error line instead of a crash."""
from __future__ import annotations

import functools
import html
import logging
from typing import Any, Callable

from modules.scripting import runtime

log = logging.getLogger("extensions")


def wrap_queued_call(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def f(*args: Any, **kwargs: Any) -> Any:
        engine = runtime.current(required=False)
        if engine is None:
            return func(*args, **kwargs)
        with engine.state.queue.hold():
            return func(*args, **kwargs)
    return f


def wrap_gradio_call(func: Callable[..., Any], extra_outputs: Any = None, add_stats: bool = False) -> Callable[..., Any]:
    @functools.wraps(func)
    def f(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the page shows the error, the app goes on
            log.exception("Error in %s", getattr(func, "__name__", func))
            message = f"<div class='error'>{html.escape(type(e).__name__)}: {html.escape(str(e))}</div>"
            outputs = list(extra_outputs) if extra_outputs is not None else [None, ""]
            return tuple(outputs + [message])
    return f


def wrap_gradio_call_no_job(func: Callable[..., Any], extra_outputs: Any = None, add_stats: bool = False) -> Callable[..., Any]:
    return wrap_gradio_call(func, extra_outputs, add_stats)


def wrap_gradio_gpu_call(func: Callable[..., Any], extra_outputs: Any = None) -> Callable[..., Any]:
    return wrap_gradio_call(wrap_queued_call(func), extra_outputs)
