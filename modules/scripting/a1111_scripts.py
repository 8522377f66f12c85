"""The rest of A1111's ``modules.scripts`` surface: ``basedir()``, ``OnComponent``, ``list_scripts`` and the
running Engine's runners (``scripts_txt2img`` / ``scripts_img2img`` / ``scripts_data``)."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from modules.scripting import runtime

if TYPE_CHECKING:
    from modules.engine.engine import Engine


@dataclass
class OnComponent:
    component: Any


@dataclass
class ScriptFileEntry:
    """A1111's ``ScriptFile(basedir, filename, path)``."""

    basedir: str
    filename: str
    path: str


# What A1111's start-up has imported before any extension runs: extensions reach these as attributes of
# ``modules`` (``modules.textual_inversion.textual_inversion.EmbeddingDatabase()``) without importing them.
A1111_STARTUP_MODULES = ("modules.shared", "modules.paths", "modules.devices", "modules.sd_models", "modules.sd_vae",
                         "modules.sd_samplers", "modules.sd_hijack", "modules.processing", "modules.scripts",
                         "modules.images", "modules.script_callbacks", "modules.extra_networks",
                         "modules.textual_inversion.textual_inversion")
# ...and before any script builds its UI (Gradio's): LoRA block weight names its own component class's module
# ``modules.ui_components``, which Gradio then looks up in ``sys.modules``. Not imported before: the API alone
# runs without Gradio.
A1111_UI_MODULES = ("modules.ui_components",)


def import_a1111_modules(ui: bool = False) -> None:
    for name in A1111_UI_MODULES if ui else A1111_STARTUP_MODULES:
        importlib.import_module(name)


def basedir() -> str:
    """The folder of the extension whose script is being imported; else the program's folder (A1111)."""
    loading = runtime.loading_basedir.get()
    if loading:
        return loading
    engine = runtime.current(required=False)
    return str(engine.paths.repo_root) if engine is not None else os.getcwd()


def list_scripts(scriptdirname: str, extension: str, *, include_extensions: bool = True) -> list[ScriptFileEntry]:
    """Files ending with ``extension`` in the program's ``scriptdirname`` and the active extensions' ones."""
    engine = runtime.current()
    out: list[ScriptFileEntry] = []
    roots = [str(engine.paths.repo_root)]
    if include_extensions:
        roots += [str(ext.path) for ext in runtime.host(engine).extensions.active()]
    for root in roots:
        folder = os.path.join(root, scriptdirname)
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                full = os.path.join(folder, name)
                if os.path.isfile(full) and os.path.splitext(name)[1].lower() == extension.lower():
                    out.append(ScriptFileEntry(root, name, full))
    return out


def list_files_with_name(filename: str) -> list[str]:
    """Every ``filename`` at the top of the program and the active extensions (A1111's helper for e.g. style.css)."""
    engine = runtime.current()
    roots = [str(engine.paths.repo_root)] + [str(ext.path) for ext in runtime.host(engine).extensions.active()]
    return [os.path.join(r, filename) for r in roots if os.path.isfile(os.path.join(r, filename))]


def postproc_runner(engine: "Engine") -> Any:
    from modules.scripting.postprocessing_scripts import PostprocessingRunner

    state = runtime.engine_state(engine)
    classes = [d.script_class for d in runtime.host(engine).scripts.postprocessing_data]
    if state.get("postproc_classes") != classes:
        state["postproc_classes"] = classes
        state["postproc"] = PostprocessingRunner(state["postproc_classes"])
    return state["postproc"]


RESOLVERS: dict[str, Callable[[Any], Any]] = {
    "scripts_txt2img": lambda e: runtime.host(e).scripts.txt2img,
    "scripts_img2img": lambda e: runtime.host(e).scripts.img2img,
    "scripts_postproc": lambda e: postproc_runner(e),
    "scripts_current": lambda e: None,
    "scripts_data": lambda e: list(runtime.host(e).scripts.script_data),
    "postprocessing_scripts_data": lambda e: list(runtime.host(e).scripts.postprocessing_data),
    "current_basedir": lambda e: basedir(),
}
