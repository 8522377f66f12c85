"""A1111's script API (spec §12.2): ``Script``, ``AlwaysVisible``, a ``ScriptRunner`` per tab, and the loader.

Scripts are the ``scripts.Script`` subclasses defined in ``<repo>/scripts/*.py`` and in the active
extensions' ``scripts/*.py`` (loaded once per Engine by :class:`ScriptManager`, in A1111's order:
the program's own, then the extensions', then ``metadata.ini``'s Before/After). ``show(is_img2img)``
decides where one appears: ``False`` nowhere, ``True`` in the tab's "Script" dropdown (its ``run`` does
the whole job), ``AlwaysVisible`` always on (its hooks run in every generation of the tab).

Arguments travel as in A1111: one flat list per tab, index 0 the selected script's number (0 = none),
then every script's UI values in the slice ``args_from:args_to`` (always-on scripts first, then the
selectable ones). The slices come from calling each script's ``ui()`` once (inside a detached
``gr.Blocks`` when the page has not built them): requests name a script and give only its arguments
(``script_name``/``script_args``/``alwayson_scripts``), the rest are the UI defaults.

A script whose import, ``ui()``, ``show()`` or hook raises is logged and recorded (``load_errors``, and
the extension's ``errors``); a raising hook is switched off for the rest of that call and the
generation goes on.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from modules.scripting import loading as script_loading
from modules.scripting import runtime
from modules.scripting import a1111_scripts
from modules.core.request import GenerationRequest, Processed, RequestError
from modules.engine.hooks import MaskBlendArgs, PostProcessMaskOverlayArgs  # noqa: F401 - A1111's names
from modules.engine.job_state import GenerationInterrupted

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost

log = logging.getLogger(__name__)

# A1111's marker returned by ``show()`` for always-on scripts (compared by identity or equality).
AlwaysVisible = object()

HOOKS = ("setup", "before_process", "process", "before_process_batch", "after_extra_networks_activate",
         "process_batch", "before_hr", "on_mask_blend", "post_sample", "postprocess_maskoverlay", "postprocess_batch", "postprocess_batch_list", "postprocess_image",
         "postprocess")


@dataclass
class PostprocessImageArgs:
    image: Any


@dataclass
class PostprocessBatchListArgs:
    images: list


@dataclass
class PostSampleArgs:
    samples: Any


class Script:
    """Base class of every script; override what you need (``title`` is required)."""

    name: str | None = None  # the lower-cased title, set by the runner
    section: str | None = None
    filename: str | None = None
    args_from: int | None = None
    args_to: int | None = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname: str | None = None
    group: Any = None
    create_group = True
    infotext_fields: list | None = None
    paste_field_names: list | None = None
    api_info: Any = None
    setup_for_ui_only = False
    controls: list | None = None
    extension: str | None = None  # the extension's name (None for the program's own scripts)
    engine: Engine = None  # not in A1111: the Engine, for choices lists in ui() (A1111 scripts reach globals)

    def title(self) -> str:
        raise NotImplementedError(f"{type(self).__name__}.title() must return the script's name")

    def show(self, is_img2img: bool) -> Any:
        return True

    def ui(self, is_img2img: bool) -> list | None:
        return None

    def run(self, p: Any, *args: Any) -> Processed | None:
        return None

    def setup(self, p: Any, *args: Any) -> None:
        pass

    def before_process(self, p: Any, *args: Any) -> None:
        pass

    def process(self, p: Any, *args: Any) -> None:
        pass

    def before_process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def after_extra_networks_activate(self, p: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def process_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def process_before_every_sampling(self, p: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def before_hr(self, p: Any, *args: Any) -> None:
        pass

    def post_sample(self, p: Any, ps: PostSampleArgs, *args: Any) -> None:
        pass

    def on_mask_blend(self, p: Any, mba: MaskBlendArgs, *args: Any) -> None:
        pass

    def postprocess_maskoverlay(self, p: Any, ppmo: PostProcessMaskOverlayArgs, *args: Any) -> None:
        pass

    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def postprocess_batch_list(self, p: Any, pp: PostprocessBatchListArgs, *args: Any, **kwargs: Any) -> None:
        pass

    def postprocess_image(self, p: Any, pp: PostprocessImageArgs, *args: Any) -> None:
        pass

    def postprocess(self, p: Any, processed: Processed, *args: Any) -> None:
        pass

    def before_component(self, component: Any, **kwargs: Any) -> None:
        pass

    def after_component(self, component: Any, **kwargs: Any) -> None:
        pass

    def describe(self) -> str:
        return ""

    def elem_id(self, item_id: str) -> str:
        """``script_`` + (tab name when the script shows on both tabs) + title in snake case + ``_`` + item_id."""
        title = "".join(c for c in self.title().lower().replace(" ", "_") if c.isalnum() or c == "_")
        need_tab = self.show(not self.is_img2img) == self.show(self.is_img2img)
        tab = f"{'img2img' if self.is_img2img else 'txt2img'}_" if need_tab else ""
        return f"script_{tab}{title}_{item_id}"


def _overrides(script: Script, hook: str) -> bool:
    return getattr(type(script), hook, None) is not getattr(Script, hook)


# --- loading --------------------------------------------------------------------------------------

@dataclass
class ScriptFile:
    key: str  # "<extension canonical name>/scripts/<file>.py", or "scripts/<file>.py" for the program's own
    path: Path
    basedir: Path
    extension: Any = None  # extensions.Extension


@dataclass
class ScriptClassData:
    script_class: type
    path: Path
    basedir: Path
    module: Any
    extension: Any = None


@dataclass
class LoadError:
    file: str
    error: str
    trace: str = field(default="", repr=False)


def order_script_files(files: list[ScriptFile]) -> list[ScriptFile]:
    """``metadata.ini``'s Before/After applied to the default order (a stable topological sort).

    A name in Before/After is an extension's canonical name (all its scripts) or a script key. A cycle
    keeps the default order for the scripts in it, with a warning."""
    keys = [f.key for f in files]

    def targets(name: str) -> list[int]:
        name = name.strip().lower().replace("\\", "/")
        hits = [i for i, f in enumerate(files) if f.key.lower() == name]
        if hits:
            return hits
        return [i for i, f in enumerate(files) if f.extension is not None and f.extension.canonical_name == name]

    after: dict[int, set[int]] = {i: set() for i in range(len(files))}  # i must come after these
    for i, f in enumerate(files):
        if f.extension is None:
            continue
        rel = os.path.relpath(f.path, f.extension.path).replace(os.sep, "/")
        meta = f.extension.metadata
        for name in meta.script_after.get(rel, []):
            after[i].update(j for j in targets(name) if j != i)
        for name in meta.script_before.get(rel, []):
            for j in targets(name):
                if j != i:
                    after[j].add(i)
    out: list[int] = []
    placed: set[int] = set()
    while len(out) < len(files):
        ready = [i for i in range(len(files)) if i not in placed and after[i] <= placed]
        if not ready:  # a cycle: take the earliest remaining one
            ready = [min(i for i in range(len(files)) if i not in placed)]
            log.warning("Script order: a Before/After cycle around %s; keeping the default order there", keys[ready[0]])
        out.append(ready[0])
        placed.add(ready[0])
    return [files[i] for i in out]


class ScriptManager:
    """The scripts of one script host: loading, one runner per tab, the API's listings."""

    def __init__(self, host: "ScriptHost") -> None:
        self.host = host
        self.engine = host.engine
        self._lock = threading.RLock()
        self.loaded = False
        self.script_data: list[ScriptClassData] = []
        self.postprocessing_data: list[ScriptClassData] = []  # Extras scripts (ScriptPostprocessing classes)
        self.load_errors: list[LoadError] = []
        self._runners: dict[bool, ScriptRunner] = {}

    # -- loading ---------------------------------------------------------------------------------
    def script_files(self) -> list[ScriptFile]:
        repo = Path(self.engine.paths.repo_root)
        files = [ScriptFile(f"scripts/{p.name}", p, repo) for p in _py_files(repo / "scripts")]
        for ext in self.host.extensions.active():
            for path in ext.files("scripts", (".py",)):
                files.append(ScriptFile(f"{ext.canonical_name}/scripts/{path.name}", path, ext.path, ext))
        return order_script_files(files)

    def load(self) -> None:
        """Import every script once (A1111 does it at start-up); later calls do nothing."""
        with self._lock:
            if self.loaded:
                return
            self.loaded = True
            runtime.bind(self.engine)  # A1111's globals (modules.shared...) answer this Engine from now on
            with runtime.using(self.engine):
                self._load_all()

    def _load_all(self) -> None:
        extensions = self.host.extensions
        try:
            extensions.run_installers()
        except Exception as exc:  # an unreadable record must not stop the program
            log.error("Extension installers: %s", exc)
        callbacks = self.host.callbacks
        for ext in extensions.active():
            ext.loaded = True
        a1111_scripts.import_a1111_modules()
        for file in self.script_files():
            self._load_file(file, callbacks)
        from modules.scripting.a1111_upscaler import register_extension_upscalers

        register_extension_upscalers(self.engine)  # Upscaler subclasses the scripts defined
        # Scripts are made now (A1111 makes them before the page): some register callbacks in __init__.
        self.runner(False), self.runner(True)
        callbacks.run("ui_settings", self.engine.options)

    def _load_file(self, file: ScriptFile, callbacks: Any) -> None:
        ext = file.extension
        owner = ext.name if ext is not None else None
        missing = _missing_requirements(file, self.host.extensions)
        if missing:
            self._error(file.path, ext, f"requires {', '.join(missing)}, which is not installed or is disabled")
            return
        name = script_loading.module_name_for(ext.canonical_name if ext is not None else "builtin", file.path)
        try:
            with callbacks.active(owner, file.key), runtime.loading(str(file.basedir)):
                module = script_loading.load_module(file.path, name, file.basedir)
        except BaseException as exc:  # SystemExit from a careless script must not end the program either
            if isinstance(exc, KeyboardInterrupt):
                raise
            callbacks.remove(lambda e: e.name == file.key)  # half-imported: its callbacks may not work
            self._error(file.path, ext, f"{type(exc).__name__}: {exc}", traceback.format_exc())
            return
        from modules.scripting import postprocessing_scripts

        for cls in postprocessing_scripts.classes_in(module, {d.script_class for d in self.postprocessing_data}):
            self.postprocessing_data.append(ScriptClassData(cls, file.path, file.basedir, module, ext))
        for cls in _script_classes(module, {d.script_class for d in self.script_data}):
            self.script_data.append(ScriptClassData(cls, file.path, file.basedir, module, ext))
        if ext is not None:
            ext.scripts_loaded.append(file.path.name)

    def _error(self, path: Any, extension: Any, error: str, trace: str = "") -> None:
        """Record a script that could not be loaded or set up (also on its extension, for the Extensions tab)."""
        log.error("Error loading script %s: %s%s", path, error, f"\n{trace}" if trace else "")
        self.load_errors.append(LoadError(str(path), error, trace))
        if extension is not None:
            message = f"{Path(str(path)).name}: {error}"
            if message not in extension.errors:
                extension.errors.append(message)

    def _error_of(self, script: Script, error: str, trace: str = "") -> None:
        ext = self.host.extensions.find(script.extension) if script.extension else None
        self._error(script.filename or type(script).__name__, ext, error, trace)

    def record_hook_error(self, script: Script, hook: str, exc: BaseException) -> None:
        error = f"{hook}() raised {type(exc).__name__}: {exc}"
        log.error("Script %s (%s): %s\n%s", title_of(script), script.filename, error, traceback.format_exc())
        ext = self.host.extensions.find(script.extension) if script.extension else None
        if ext is not None:
            message = f"{Path(script.filename or '').name}: {error}"
            if message not in ext.errors:
                ext.errors.append(message)

    def unload(self) -> None:
        """Run ``script_unloaded`` callbacks and forget every script and callback (a reload imports again)."""
        with self._lock:
            callbacks = self.host.callbacks
            callbacks.run("script_unloaded")
            callbacks.clear()
            self.script_data = []
            self.postprocessing_data = []
            self.load_errors = []
            self._runners = {}
            self.loaded = False

    # -- runners ---------------------------------------------------------------------------------
    def runner(self, is_img2img: bool) -> "ScriptRunner":
        with self._lock:
            self.load()
            key = bool(is_img2img)
            if key not in self._runners:
                self._runners[key] = ScriptRunner(self, key, self.script_data)
            return self._runners[key]

    @property
    def txt2img(self) -> "ScriptRunner":
        return self.runner(False)

    @property
    def img2img(self) -> "ScriptRunner":
        return self.runner(True)

    # -- running ---------------------------------------------------------------------------------
    def processing_for(self, request: GenerationRequest) -> Any:
        """The ``p`` of ``request``: its tab's runner and the flat argument list (RequestError if a named
        script does not exist or gets too many arguments)."""
        from modules.scripting.processing_object import StableDiffusionProcessing

        runner = self.runner(request.is_img2img)
        args = runner.build_args(request.script_name, request.script_args, request.alwayson_scripts)
        return StableDiffusionProcessing(self.engine, request, scripts=runner, script_args=args)

    # -- API listings ----------------------------------------------------------------------------
    def api_script_names(self) -> dict[str, list[str]]:
        return {"txt2img": [s.name for s in self.txt2img.selectable_scripts if s.name],
                "img2img": [s.name for s in self.img2img.selectable_scripts if s.name]}

    def api_script_info(self) -> list[dict[str, Any]]:
        out = []
        for runner in (self.txt2img, self.img2img):
            runner.ensure_layout()
            for script in runner.scripts:
                out.append({"name": script.name, "is_alwayson": bool(script.alwayson), "is_img2img": runner.is_img2img,
                            "args": list(runner.arg_infos.get(id(script), []))})
        return out


def _script_classes(module: Any, known: set[type]) -> list[type]:
    """The Script subclasses a script file holds, defined there or imported / re-exported from the extension's own
    package (A1111 does not look at ``__module__``); a class is taken once, and only one that names itself
    (overrides ``title``): an imported intermediate base class is not a script."""
    out = []
    for value in vars(module).values():
        if (isinstance(value, type) and issubclass(value, Script) and value is not Script and value not in known
                and value not in out and getattr(value, "title", None) is not Script.title):
            out.append(value)
    return out


def _py_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix == ".py" and p.is_file()), key=lambda p: p.name.lower())


def _missing_requirements(file: ScriptFile, extensions: Any) -> list[str]:
    ext = file.extension
    if ext is None:
        return []
    rel = os.path.relpath(file.path, ext.path).replace(os.sep, "/")
    names = {e.canonical_name for e in extensions.active()}
    return [req for req in ext.metadata.script_requires.get(rel, [])
            if not any(alt.strip().lower() in names for alt in req.split("|"))]


def title_of(script: Script) -> str:
    try:
        return str(script.title())
    except Exception:
        return type(script).__name__


# --- runner ---------------------------------------------------------------------------------------

def _component_default(component: Any) -> Any:
    value = getattr(component, "value", None)
    if callable(value):
        try:
            value = value()
        except Exception:
            value = None
    return value


def _choices(component: Any) -> list | None:
    choices = getattr(component, "choices", None)
    if not choices:
        return None
    return [c[1] if isinstance(c, (tuple, list)) and len(c) == 2 else c for c in choices]


def _json_safe(value: Any) -> Any:
    plain = (str, int, float, bool, type(None))
    if isinstance(value, plain):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    return str(value)


def arg_info(component: Any) -> dict[str, Any]:
    """A1111's /script-info entry for one UI component."""
    choices = _choices(component)
    return {"label": _json_safe(getattr(component, "label", None)), "value": _json_safe(_component_default(component)),
            "minimum": _json_safe(getattr(component, "minimum", None)),
            "maximum": _json_safe(getattr(component, "maximum", None)),
            "step": _json_safe(getattr(component, "step", None)),
            "choices": [str(c) for c in choices] if choices is not None else None}


class ScriptRunner:
    """The scripts of one tab (A1111's ``scripts_txt2img`` / ``scripts_img2img``)."""

    def __init__(self, manager: ScriptManager, is_img2img: bool, script_data: Iterable[ScriptClassData]) -> None:
        self.manager = manager
        self.is_img2img = is_img2img
        self.tabname = "img2img" if is_img2img else "txt2img"
        self.alwayson_scripts: list[Script] = []
        self.selectable_scripts: list[Script] = []
        self._lock = threading.RLock()
        self.laid_out = False
        self.inputs: list[Any] = [None]  # UI components by flat index (0: the Script dropdown)
        self.defaults: list[Any] = [0]
        self.arg_infos: dict[int, list[dict[str, Any]]] = {}
        for data in script_data:
            self._add(data)
        self._add_postprocessing_for_main_ui()
        self.scripts: list[Script] = self.alwayson_scripts + self.selectable_scripts  # argument order

    def _add(self, data: ScriptClassData) -> None:
        try:
            owner = data.extension.name if data.extension is not None else None
            key = f"{data.extension.canonical_name}/scripts/{data.path.name}" if data.extension else f"scripts/{data.path.name}"
            callbacks = getattr(getattr(self.manager, "host", None), "callbacks", None)
            scope = callbacks.active(owner, key) if callbacks is not None else contextlib.nullcontext()
            with scope:  # on_* calls in __init__ belong to the extension
                script = data.script_class()
            script.filename = str(data.path)
            script.engine = self.manager.engine
            script.extension = data.extension.name if data.extension is not None else None
            script.is_txt2img = not self.is_img2img
            script.is_img2img = self.is_img2img
            script.tabname = self.tabname
            visibility = script.show(self.is_img2img)
            script.name = str(script.title()).lower()
        except Exception as exc:
            self.manager._error(data.path, data.extension, f"{data.script_class.__name__}: {type(exc).__name__}: {exc}",
                                traceback.format_exc())
            return
        if visibility is AlwaysVisible or visibility == AlwaysVisible:
            script.alwayson = True
            self.alwayson_scripts.append(script)
        elif visibility:
            self.selectable_scripts.append(script)

    def _add_postprocessing_for_main_ui(self) -> None:
        """The Extras operations the ``postprocessing_enable_in_main_ui`` setting names, as always-on scripts."""
        from modules.scripting.postprocessing_main_ui import main_ui_scripts

        engine = getattr(self.manager, "engine", None)
        if engine is None:
            return
        try:
            data = list(getattr(self.manager, "postprocessing_data", []))
            scripts = main_ui_scripts(engine, self.is_img2img, [d.script_class for d in data])
        except Exception:  # noqa: BLE001 - a broken Extras script must not take the tab's scripts with it
            log.exception("Extras operations for the %s tab", self.tabname)
            return
        where = {d.script_class: d for d in data}
        for script in scripts:
            origin = where.get(type(script.script))
            script.filename = str(origin.path) if origin is not None else script.filename
            script.engine = engine
            script.extension = origin.extension.name if origin is not None and origin.extension is not None else None
            script.is_txt2img = not self.is_img2img
            script.tabname = self.tabname
            script.name = str(script.title()).lower()
            script.alwayson = True
            self.alwayson_scripts.append(script)

    # -- lookups ---------------------------------------------------------------------------------
    def find(self, title: str | None, scripts: list[Script] | None = None) -> Script | None:
        if not title:
            return None
        low = str(title).strip().lower()
        return next((s for s in (scripts if scripts is not None else self.scripts) if s.name == low), None)

    def titles(self) -> list[str]:
        return [title_of(s) for s in self.selectable_scripts]

    # -- argument layout -------------------------------------------------------------------------
    def layout(self, build: Callable[[Script], list | None], between: Callable[[], Any] | None = None) -> None:
        """Give each script its ``args_from:args_to``: ``build(script)`` calls its ``ui()`` (the page wraps it
        in an accordion or a group) and returns the components; ``between()`` runs after the always-on
        scripts (the page makes the Script dropdown there). A script whose ui() raises gets no arguments."""
        from modules.scripting.gradio3_compat import extension_ui

        a1111_scripts.import_a1111_modules(ui=True)
        with self._lock, extension_ui():  # extensions' ui() may use Gradio 3 calls
            inputs: list[Any] = [None]
            defaults: list[Any] = [0]
            infos: dict[int, list[dict[str, Any]]] = {}
            for i, script in enumerate(self.scripts):
                if between is not None and i == len(self.alwayson_scripts):
                    between()
                try:
                    controls = list(build(script) or [])
                except (Exception, SystemExit) as exc:  # argparse in a ui() exits: contain it too
                    self.manager._error_of(script, f"{title_of(script)}: ui() raised {type(exc).__name__}: {exc}",
                                           traceback.format_exc())
                    controls = []
                script.controls = controls
                script.args_from = len(inputs)
                inputs.extend(controls)
                defaults.extend(_component_default(c) for c in controls)
                script.args_to = len(inputs)
                infos[id(script)] = [arg_info(c) for c in controls]
            if between is not None and len(self.alwayson_scripts) == len(self.scripts):
                between()
            self.inputs, self.defaults, self.arg_infos = inputs, defaults, infos
            self.laid_out = True

    def ensure_layout(self) -> None:
        """Lay the arguments out without a page (API, or before the UI is built): the ``ui()`` components go
        into a throwaway ``gr.Blocks``. Nothing to do when the tab has no scripts."""
        with self._lock:
            if self.laid_out:
                return
            if not self.scripts:
                self.laid_out = True
                return
            import gradio as gr

            with gr.Blocks(analytics_enabled=False):
                self.layout(lambda script: script.ui(self.is_img2img))

    def check_script_names(self, script_name: str | None, alwayson_scripts: Any) -> Any:
        """The selected script (None when none is named); RequestError (A1111's messages) for a name that is not
        a script of this runner, or a selectable script among the always-on ones."""
        selected = None
        if script_name:
            selected = self.find(script_name, self.selectable_scripts)
            if selected is None:
                raise RequestError("script_name", f"Script '{script_name}' not found")
        for title in alwayson_scripts or {}:
            script = self.find(title)
            if script is None:
                raise RequestError("alwayson_scripts", f"always on script {title} not found")
            if not script.alwayson:
                raise RequestError("alwayson_scripts", "Cannot have a selectable script in the always on scripts params")
        return selected

    def build_args(self, script_name: str | None, script_args: Iterable[Any] | None,
                   alwayson_scripts: dict[str, Any] | None) -> list[Any]:
        """The flat argument list of a request (A1111's API semantics); RequestError names what is wrong."""
        script_args = list(script_args or [])
        alwayson_scripts = dict(alwayson_scripts or {})
        selected = self.check_script_names(script_name, alwayson_scripts)
        if selected is None and not self.alwayson_scripts:
            return [0]
        self.ensure_layout()
        args = list(self.defaults)
        if selected is not None:
            args[0] = self.selectable_scripts.index(selected) + 1
            self._fill(args, selected, script_args, "script_args")
        for title, entry in alwayson_scripts.items():
            script = self.find(title)
            values = entry.get("args", []) if isinstance(entry, dict) else entry
            if not isinstance(values, (list, tuple)):
                raise RequestError("alwayson_scripts", f"{title}: 'args' must be a list, got {type(values).__name__}")
            self._fill(args, script, list(values), f"alwayson_scripts.{title}.args")
        return args

    @staticmethod
    def _fill(args: list[Any], script: Script, values: list[Any], field_name: str) -> None:
        width = (script.args_to or 0) - (script.args_from or 0)
        if len(values) > width:
            raise RequestError(field_name, f"{title_of(script)!r} takes {width} argument(s), got {len(values)}")
        args[script.args_from:script.args_from + len(values)] = values

    # -- running ---------------------------------------------------------------------------------
    def script_args_of(self, script: Script, args: list[Any]) -> list[Any]:
        return list(args[script.args_from:script.args_to]) if script.args_from is not None else []

    def run(self, p: Any, *args: Any) -> Processed | None:
        """``args[0]`` is the selected script's number (0 = none); it gets its slice of ``args``."""
        index = args[0] if args else 0
        if not index:
            return None
        script = self.selectable_scripts[int(index) - 1]
        try:
            return script.run(p, *self.script_args_of(script, list(args)))
        except (RequestError, GenerationInterrupted):
            raise
        except (Exception, SystemExit) as exc:
            from modules.scripting.errors import ScriptError

            self.manager.record_hook_error(script, "run", exc)
            raise ScriptError(title_of(script), script.extension, exc) from exc

    def _each(self, p: Any, hook: str, call: Callable[[Script, Callable[..., Any], list[Any]], None]) -> None:
        failed = p.failed_scripts
        for script in self.alwayson_scripts:
            if id(script) in failed or not _overrides(script, hook):
                continue
            try:
                call(script, getattr(script, hook), self.script_args_of(script, p.script_args))
            except RequestError:  # a script refusing its arguments refuses the request (4xx), it does not fail
                raise
            except (Exception, SystemExit) as exc:
                failed.add(id(script))
                self.manager.record_hook_error(script, hook, exc)

    def setup(self, p: Any) -> None:
        self._each(p, "setup", lambda s, fn, a: fn(p, *a))

    def before_process(self, p: Any) -> None:
        self._each(p, "before_process", lambda s, fn, a: fn(p, *a))

    def process(self, p: Any) -> None:
        self._each(p, "process", lambda s, fn, a: fn(p, *a))

    def before_process_batch(self, p: Any, **kwargs: Any) -> None:
        self._each(p, "before_process_batch", lambda s, fn, a: fn(p, *a, **kwargs))

    def after_extra_networks_activate(self, p: Any, **kwargs: Any) -> None:
        self._each(p, "after_extra_networks_activate", lambda s, fn, a: fn(p, *a, **kwargs))

    def process_batch(self, p: Any, **kwargs: Any) -> None:
        self._each(p, "process_batch", lambda s, fn, a: fn(p, *a, **kwargs))

    def before_hr(self, p: Any) -> None:
        self._each(p, "before_hr", lambda s, fn, a: fn(p, *a))

    def has_hook(self, p: Any, hook: str) -> bool:
        return any(id(s) not in p.failed_scripts and _overrides(s, hook) for s in self.alwayson_scripts)

    def on_mask_blend(self, p: Any, mba: MaskBlendArgs) -> None:
        self._each(p, "on_mask_blend", lambda s, fn, a: fn(p, mba, *a))

    def post_sample(self, p: Any, ps: PostSampleArgs) -> None:
        self._each(p, "post_sample", lambda s, fn, a: fn(p, ps, *a))

    def postprocess_maskoverlay(self, p: Any, ppmo: PostProcessMaskOverlayArgs) -> None:
        self._each(p, "postprocess_maskoverlay", lambda s, fn, a: fn(p, ppmo, *a))

    def postprocess_batch_images(self, p: Any, images: list, batch_number: int) -> list:
        """postprocess_batch (sees the batch's images), then postprocess_batch_list (may replace the list)."""
        self._each(p, "postprocess_batch", lambda s, fn, a: fn(p, *a, images=images, batch_number=batch_number))
        pp = PostprocessBatchListArgs(list(images))
        self._each(p, "postprocess_batch_list", lambda s, fn, a: fn(p, pp, *a, batch_number=batch_number))
        return list(pp.images)

    def postprocess_image_one(self, p: Any, image: Any) -> Any:
        pp = PostprocessImageArgs(image)
        self._each(p, "postprocess_image", lambda s, fn, a: fn(p, pp, *a))
        return pp.image

    def postprocess(self, p: Any, processed: Processed) -> None:
        self._each(p, "postprocess", lambda s, fn, a: fn(p, processed, *a))
