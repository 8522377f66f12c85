"""The script layer of one Engine: A1111's scripts, extensions and callbacks, on top of the Engine.

The doors (page, API) run a request through :meth:`ScriptHost.generate`: the selected script's ``run``
(``script_name``) or ``process_images``, with the always-on scripts' hooks either way. The Engine itself
knows nothing of this layer; the host plugs into a generation through the Engine's hooks
(:mod:`modules.scripting.processing`).
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from modules.core.request import GenerationRequest, Processed
from modules.scripting import processing
from modules.scripting.callbacks import CallbackRegistry
from modules.scripting.extensions import ExtensionManager
from modules.scripting.scripts import ScriptManager

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

# One host per Engine: ``p`` objects that A1111 scripts build or copy carry only the engine, and must find
# the same scripts and callbacks. Weak, so a dropped engine (a test's) takes its host with it.
_HOSTS: "weakref.WeakKeyDictionary[Engine, ScriptHost]" = weakref.WeakKeyDictionary()
_HOSTS_LOCK = threading.Lock()


class ScriptHost:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.callbacks = CallbackRegistry()
        self.extensions = ExtensionManager(engine.paths, engine.options, engine.args)
        self.scripts = ScriptManager(self)
        self._lock = threading.Lock()
        self._model_seen: int | None = None

    @classmethod
    def for_engine(cls, engine: "Engine") -> "ScriptHost":
        """The engine's host, made on first use (scripts are imported by :meth:`load`)."""
        with _HOSTS_LOCK:
            host = _HOSTS.get(engine)
            if host is None:
                host = _HOSTS[engine] = cls(engine)
            return host

    def load(self) -> "ScriptHost":
        """Import the scripts and extensions (once)."""
        self.scripts.load()
        return self

    def generate(self, request: GenerationRequest) -> Processed:
        """The selected script's ``run`` when ``script_name`` is set (``process_images`` if it returns None),
        else ``process_images``; the always-on scripts' hooks run either way."""
        p = self.scripts.processing_for(request)
        runner = p.scripts
        if not request.script_name:
            runner.setup(p)
            return processing.process_images(p)
        # One job for the whole script: its generations join it.
        with self.engine.job(request):
            runner.setup(p)
            processed = runner.run(p, *p.script_args)
            if processed is None:
                processed = processing.process_images(p)
        return processed

    def extras_scripts(self, values: dict[str, dict] | None = None) -> Any:
        """The extensions' Extras scripts for one run of ``run_postprocessing`` (None when there are none):
        ``values`` {script name: {control name: value}} from the Extras tab, defaults for the rest."""
        from modules.scripting import runtime
        from modules.scripting.a1111_scripts import postproc_runner
        from modules.scripting.postprocessing_scripts import UPSCALE, ExtrasRun

        from modules.scripting.postprocessing_main_ui import extras_scripts_of

        disabled = list(self.engine.options.get("postprocessing_disable_in_extras") or [])
        scripts = extras_scripts_of(postproc_runner(self.engine).scripts, disabled)
        upscale = UPSCALE not in disabled
        if not scripts and upscale:
            return None
        with runtime.using(self.engine):
            return ExtrasRun(scripts, values, self.engine.options.get("postprocessing_operation_order") or [],
                             upscale=upscale)

    def check_model_loaded(self) -> None:
        """Run ``model_loaded`` callbacks once per checkpoint load (before a generation first uses it)."""
        engine = self.engine
        with self._lock:
            if engine.model is None or engine.model_generation == self._model_seen:
                return
            self._model_seen = engine.model_generation
        self.callbacks.run("model_loaded", engine.model)
