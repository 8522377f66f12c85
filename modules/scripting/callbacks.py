"""A1111's ``script_callbacks`` (spec §12.3): extension code registers functions that the app calls at set points.

Extension modules call ``script_callbacks.on_<name>(fn, name=None)`` at import time, as in A1111. The
functions land in the :class:`CallbackRegistry` of the script host (``host.callbacks``): the loader
makes that registry *active* (a ``ContextVar``) while it imports an extension, and a registry running its
callbacks makes itself active again, so a callback may register another. Called anywhere else, ``on_*``
raises :class:`CallbackRegistrationError` (there is no global registry to fall back on).

A callback that raises is logged with its owner and skipped; the rest still run and the app goes on.
"""
from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import traceback
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

# kind -> what it is for (A1111's names without the ``on_`` prefix).
KINDS: dict[str, str] = {
    "app_started": "(demo: gr.Blocks | None, app: FastAPI) once the app is built",
    "before_reload": "() before the scripts are reloaded",
    "model_loaded": "(sd_model) after a checkpoint was loaded, before it is used",
    "ui_tabs": "() -> [(gr.Blocks, title, elem_id)] new top-level tabs",
    "ui_train_tabs": "(params) tabs under Train (not shown: this app has no Train tab)",
    "ui_settings": "() or (options) register settings with options.add_option(OptionInfo(...))",
    "before_image_saved": "(ImageSaveParams) before an image is written; may change it",
    "image_saved": "(ImageSaveParams) after an image was written",
    "extra_noise": "(ExtraNoiseParams) before img2img's extra noise is added (setting img2img_extra_noise > 0)",
    "cfg_denoiser": "(CFGDenoiserParams) before each UNet call",
    "cfg_denoised": "(CFGDenoisedParams) after each UNet call",
    "cfg_after_cfg": "(AfterCFGCallbackParams) after the guidance is combined",
    "before_component": "(component, **kwargs) before each component of the page is made",
    "after_component": "(component, **kwargs) after each component of the page is made",
    "image_grid": "(ImageGridLoopParams) not called by this app",
    "infotext_pasted": "(infotext: str, params: dict) when an infotext is pasted; may edit params",
    "script_unloaded": "() before the scripts are unloaded (undo monkey-patches here)",
    "before_ui": "() before the page is built",
    "list_optimizers": "(list) not called by this app",
    "list_unets": "(list) not called by this app",
    "before_token_counter": "(BeforeTokenCounterParams) not called by this app",
}


# Callbacks in which extensions build Gradio components.
UI_KINDS = frozenset({"ui_tabs", "ui_train_tabs", "ui_settings", "before_ui", "before_component", "after_component"})


class CallbackRegistrationError(RuntimeError):
    """``on_*`` called while no extension is being loaded and no callback is running."""


# --- A1111's parameter objects -------------------------------------------------------------------
# Those the engine and the core fill are defined there, and are A1111's names here too.
from modules.core.image_files import ImageSaveParams  # noqa: E402,F401
from modules.engine.hooks import (  # noqa: E402,F401
    AfterCFGCallbackParams, CFGDenoisedParams, CFGDenoiserParams, ExtraNoiseParams,
)


@dataclass
class ImageGridLoopParams:
    imgs: list
    cols: int
    rows: int


@dataclass
class BeforeTokenCounterParams:
    prompt: str
    steps: int
    styles: list
    is_positive: bool = True


# --- registry ------------------------------------------------------------------------------------

@dataclass
class CallbackEntry:
    kind: str
    fn: Callable[..., Any]
    name: str  # who registered it: "<extension>/scripts/<file>.py", or the name given
    owner: str | None = None  # the extension's name (None for the app's own scripts)


@dataclass
class CallbackFailure:
    kind: str
    name: str
    owner: str | None
    error: str  # "ExceptionType: message"
    trace: str = field(repr=False, default="")


class CallbackRegistry:
    """The callbacks of one Engine. Thread-safe; ``run`` works on a snapshot of the list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[CallbackEntry] = []
        self.failures: deque[CallbackFailure] = deque(maxlen=100)  # most recent last, for the Extensions tab

    def add(self, kind: str, fn: Callable[..., Any], name: str | None = None, owner: str | None = None) -> CallbackEntry:
        if kind not in KINDS:
            raise ValueError(f"unknown callback kind {kind!r}; known: {', '.join(KINDS)}")
        if not callable(fn):
            raise TypeError(f"callback for {kind!r} must be callable, got {type(fn).__name__}")
        active = _ACTIVE.get(None)
        if active is not None and active.registry is self:
            owner = owner if owner is not None else active.owner
            name = name or active.name
        entry = CallbackEntry(kind, fn, name or getattr(fn, "__module__", None) or repr(fn), owner)
        with self._lock:
            self._entries.append(entry)
        return entry

    def entries(self, kind: str | None = None) -> list[CallbackEntry]:
        with self._lock:
            return [e for e in self._entries if kind is None or e.kind == kind]

    def remove(self, predicate: Callable[[CallbackEntry], bool]) -> int:
        with self._lock:
            before = len(self._entries)
            self._entries = [e for e in self._entries if not predicate(e)]
            return before - len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries = []

    def has(self, kind: str) -> bool:
        with self._lock:
            return any(e.kind == kind for e in self._entries)

    def run(self, kind: str, *args: Any, skip: set[int] | None = None) -> list[Any]:
        """Call every ``kind`` callback with ``args``; returns their results (failed ones left out).

        A callback that raises is logged and recorded in :attr:`failures`; when ``skip`` (a set kept by the
        caller for one generation) is given, the failed entry's id is added to it and it is not called
        again for as long as the caller passes that set (a per-step callback does not fail at every step).
        """
        entries = self.entries(kind)
        if kind in UI_KINDS and entries:
            from modules.scripting.gradio3_compat import extension_ui

            with extension_ui():  # extensions build UI here, often with Gradio 3 calls
                return self._run(kind, entries, args, skip)
        return self._run(kind, entries, args, skip)

    def _run(self, kind: str, entries: list[CallbackEntry], args: tuple, skip: set[int] | None) -> list[Any]:
        results = []
        for entry in entries:
            if skip is not None and id(entry) in skip:
                continue
            try:
                with self.active(entry.owner, entry.name):
                    results.append(_call(entry, args))
            except Exception as exc:
                self._record(entry, exc)
                if skip is not None:
                    skip.add(id(entry))
        return results

    def _record(self, entry: CallbackEntry, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        log.error("Error in %s callback %s (%s): %s", entry.kind, entry.name, entry.owner or "built-in", error)
        log.debug("%s", traceback.format_exc())
        self.failures.append(CallbackFailure(entry.kind, entry.name, entry.owner, error, traceback.format_exc()))

    def bound(self, skip: set[int]) -> "BoundCallbacks":
        """This registry with one generation's set of switched-off callbacks (for the sampling loop)."""
        return BoundCallbacks(self, skip)

    def failures_of(self, owner: str) -> list[CallbackFailure]:
        return [f for f in list(self.failures) if f.owner == owner]

    @contextlib.contextmanager
    def active(self, owner: str | None = None, name: str | None = None) -> Iterator["CallbackRegistry"]:
        """Make ``on_*`` register into this registry (the loader wraps each extension import in this)."""
        token = _ACTIVE.set(_Active(self, owner, name))
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


class BoundCallbacks:
    """``run(kind, *args)`` / ``has(kind)`` of a registry, with the failed-callback set of one generation."""

    def __init__(self, registry: CallbackRegistry, skip: set[int]) -> None:
        self.registry = registry
        self.skip = skip
        self._kinds = {e.kind for e in registry.entries()}

    def has(self, kind: str) -> bool:
        return kind in self._kinds

    def run(self, kind: str, *args: Any) -> list[Any]:
        return self.registry.run(kind, *args, skip=self.skip)


def _call(entry: CallbackEntry, args: tuple) -> Any:
    if entry.kind == "ui_settings" and args:
        # A1111 calls ui_settings callbacks with no argument (they reach shared.opts); ours may take the options.
        try:
            takes = len(inspect.signature(entry.fn).parameters) > 0
        except (TypeError, ValueError):
            takes = False
        return entry.fn(*args) if takes else entry.fn()
    return entry.fn(*args)


@dataclass(frozen=True)
class _Active:
    registry: CallbackRegistry
    owner: str | None
    name: str | None


# The registry that on_* registers into: set by the loader / a running registry, per thread and task.
_ACTIVE: ContextVar[_Active | None] = ContextVar("script_callbacks_active_registry", default=None)


def active_registry() -> CallbackRegistry:
    current = _ACTIVE.get(None)
    if current is None:
        # A1111 extensions also register later (in Script.__init__, in ui()): the running Engine's registry.
        from modules.scripting import runtime

        engine = runtime.current(required=False)
        if engine is not None:
            return runtime.host(engine).callbacks
        raise CallbackRegistrationError(
            "script_callbacks.on_* was called outside extension loading: register callbacks at the top level of a "
            "script module (imported by the extension loader) or from inside another callback, or call "
            "engine.callbacks.add(kind, fn) directly")
    return current.registry


def _register(kind: str, fn: Callable[..., Any], name: str | None) -> None:
    active_registry().add(kind, fn, name)


# --- A1111's registration functions ----------------------------------------------------------------

def on_app_started(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("app_started", callback, name)


def on_before_reload(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("before_reload", callback, name)


def on_model_loaded(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("model_loaded", callback, name)


def on_ui_tabs(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("ui_tabs", callback, name)


def on_ui_train_tabs(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("ui_train_tabs", callback, name)


def on_ui_settings(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("ui_settings", callback, name)


def on_before_image_saved(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("before_image_saved", callback, name)


def on_image_saved(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("image_saved", callback, name)


def on_extra_noise(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("extra_noise", callback, name)


def on_cfg_denoiser(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("cfg_denoiser", callback, name)


def on_cfg_denoised(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("cfg_denoised", callback, name)


def on_cfg_after_cfg(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("cfg_after_cfg", callback, name)


def on_before_component(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("before_component", callback, name)


def on_after_component(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("after_component", callback, name)


def on_image_grid(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("image_grid", callback, name)


def on_infotext_pasted(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("infotext_pasted", callback, name)


def on_script_unloaded(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("script_unloaded", callback, name)


def on_before_ui(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("before_ui", callback, name)


def on_list_optimizers(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("list_optimizers", callback, name)


def on_list_unets(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("list_unets", callback, name)


def on_before_token_counter(callback: Callable[..., Any], *, name: str | None = None) -> None:
    _register("before_token_counter", callback, name)


def remove_current_script_callbacks() -> None:
    """A1111: drop every callback the script file being loaded registered (extensions call it before
    registering again, e.g. on reload)."""
    active = _ACTIVE.get(None)
    if active is not None and active.name:
        active.registry.remove(lambda e: e.name == active.name)


def remove_callbacks_for_function(callback_func: Callable[..., Any]) -> None:
    active_registry().remove(lambda e: e.fn == callback_func)
