"""A1111's ``call_queue`` wrappers for extension page callbacks: a GPU call waits for the running Engine's queue
turn (one generation at a time); an exception becomes a logged error and an error line instead of a crash.

``queue_lock`` is the Engine's queue itself (``Engine.exclusive``): ``with queue_lock:`` waits for the running
generation, and a generation started inside it (``process_images``) joins the turn instead of waiting for it."""
from __future__ import annotations

import functools
import html
import logging
import threading
from typing import Any, Callable

from modules.scripting import runtime

log = logging.getLogger("extensions")


class QueueLock:
    """A1111's ``call_queue.queue_lock`` over the running Engine's queue: a context manager (and
    ``acquire``/``release`` in the same thread), re-entrant like the Engine's turn."""

    def __init__(self) -> None:
        self._held = threading.local()

    def _stack(self) -> list:
        if not hasattr(self._held, "stack"):
            self._held.stack = []
        return self._held.stack

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        engine = runtime.current()
        turn = engine.exclusive()
        turn.__enter__()
        self._stack().append(turn)
        return True

    def release(self) -> None:
        stack = self._stack()
        if not stack:
            raise RuntimeError("queue_lock released without being held in this thread")
        stack.pop().__exit__(None, None, None)

    def __enter__(self) -> "QueueLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def locked(self) -> bool:
        engine = runtime.current(required=False)
        return bool(engine is not None and (engine.state.queue.queued > 0 or self._stack()))


queue_lock = QueueLock()


def get_lock() -> QueueLock:
    return queue_lock


def wrap_queued_call(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def f(*args: Any, **kwargs: Any) -> Any:
        engine = runtime.current(required=False)
        if engine is None:
            return func(*args, **kwargs)
        with engine.exclusive():
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
    """As A1111: a first argument ``task(...)`` is the call's task id, queued, started and finished in the
    Engine's task tracker (the progress bar follows it) around the call in the queue's turn."""
    @functools.wraps(func)
    def f(*args: Any, **kwargs: Any) -> Any:
        engine = runtime.current(required=False)
        task_id = args[0] if args and isinstance(args[0], str) and args[0].startswith("task(") and args[0].endswith(")") else None
        if engine is None:
            return func(*args, **kwargs)
        if task_id is not None:
            engine.tasks.add(task_id)
        with engine.exclusive():
            engine.tasks.start(task_id)
            try:
                result = func(*args, **kwargs)
                engine.tasks.record_result(task_id, result)
            finally:
                engine.tasks.finish(task_id)
        return result
    return wrap_gradio_call(f, extra_outputs)
