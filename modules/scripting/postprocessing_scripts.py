"""A1111's Extras ("postprocessing") script API: ``ScriptPostprocessing`` subclasses with ``name``, ``order``,
``ui()`` (a dict of named controls) and ``process(pp, **values)``.

Extension files that define them load (the loader collects them as ``scripts.postprocessing_scripts_data``).
The Extras tab and ``/sdapi/v1/extra-single-image`` / ``extra-batch-images`` run them around the built-in
"Upscale" step (:class:`ExtrasRun`, handed to ``modules.engine.postprocessing.run_postprocessing``) in A1111's
order: the names listed in the ``postprocessing_operation_order`` setting first, in that order, then by each
script's ``order`` (Upscale's is 1000). Every script's ``process_firstpass`` runs before any ``process``. Their
arguments are the values of their ``ui()`` controls: from the Extras tab's controls, or their defaults (the API
has no field for them, as in A1111). A script that raises is logged by name and skipped."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PostprocessedImageSharedInfo:
    target_width: int | None = None
    target_height: int | None = None


class PostprocessedImage:
    def __init__(self, image: Any) -> None:
        self.image = image
        self.info: dict[str, Any] = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images: list = []
        self.nametags: list[str] = []
        self.disable_processing = False
        self.caption: str | None = None

    def get_suffix(self, used_suffixes: dict | None = None) -> str:
        used = {} if used_suffixes is None else used_suffixes
        suffix = "-".join(self.nametags)
        if suffix:
            suffix = "-" + suffix
        if suffix not in used:
            used[suffix] = 1
            return suffix
        for i in range(1, 100):
            proposed = f"{suffix}-{i:02}"
            if proposed not in used:
                used[proposed] = 1
                return proposed
        return suffix


class ScriptPostprocessing:
    filename: str | None = None
    controls: dict | None = None
    args_from: int | None = None
    args_to: int | None = None
    order = 1000
    name: str | None = None
    group: Any = None

    def ui(self) -> dict:
        return {}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def process_firstpass(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def image_changed(self) -> None:
        pass


def classes_in(module: Any, known: set[type]) -> list[type]:
    return [v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, ScriptPostprocessing) and v is not ScriptPostprocessing
            and v not in known and getattr(v, "name", None)]


class PostprocessingRunner:
    """The Extras scripts of one Engine, made once, in ``order``."""

    def __init__(self, classes: list[type]) -> None:
        self.scripts: list[ScriptPostprocessing] = []
        for cls in sorted(classes, key=lambda c: (getattr(c, "order", 1000), getattr(c, "name", ""))):
            try:
                self.scripts.append(cls())
            except Exception as exc:  # noqa: BLE001
                log.error("Extras script %s could not be made: %s", cls.__name__, exc)

    def run(self, image: Any, values: dict[str, dict[str, Any]]) -> PostprocessedImage:
        """Apply the scripts named in ``values`` ({script name: {control name: value}}) to ``image``."""
        pp = PostprocessedImage(image)
        chosen = [s for s in self.scripts if s.name in values]
        for script in chosen:
            script.process_firstpass(pp, **values[script.name])
        for script in chosen:
            if pp.disable_processing:
                break
            script.process(pp, **values[script.name])
        return pp


UPSCALE = "Upscale"  # the built-in step's name in postprocessing_operation_order
UPSCALE_ORDER = 1000


def control_defaults(script: ScriptPostprocessing) -> dict[str, Any]:
    """The values of a script's ``ui()`` controls as built (A1111 passes these when no UI gave others)."""
    if script.controls is None:
        import gradio as gr

        from modules.scripting.gradio3_compat import extension_ui

        with gr.Blocks(), extension_ui():
            script.controls = dict(script.ui() or {})
    return {name: getattr(control, "value", None) for name, control in script.controls.items()}


def preferred_order(scripts: Sequence[ScriptPostprocessing], operation_order: Sequence[str]) -> list[Any]:
    """Scripts and the Upscale step (as ``UPSCALE``) in A1111's order."""
    listed = list(operation_order or [])
    stages: list[tuple[str, int, Any]] = [(UPSCALE, UPSCALE_ORDER, UPSCALE)] + [
        (str(s.name), int(getattr(s, "order", 1000)), s) for s in scripts]

    def key(item: tuple[str, int, Any]) -> tuple:
        name, order, _ = item
        return (listed.index(name) if name in listed else len(listed), order, name)

    return [stage for _, _, stage in sorted(stages, key=key)]


class ExtrasRun:
    """One Extras run's scripts: ``run(image, upscale, info)`` is what ``run_postprocessing`` calls per image."""

    def __init__(self, scripts: Sequence[ScriptPostprocessing], values: dict[str, dict[str, Any]] | None,
                 operation_order: Sequence[str], upscale: bool = True) -> None:
        # ``upscale`` False: the built-in step is switched off (``postprocessing_disable_in_extras`` names it)
        self.stages = [s for s in preferred_order(scripts, operation_order) if upscale or s is not UPSCALE]
        given = values or {}
        self.args = {s.name: {**control_defaults(s), **given.get(s.name, {})}
                     for s in scripts}

    def run(self, image: Any, upscale: Callable[[Any, dict], Any], info: dict) -> Any:
        pp = PostprocessedImage(image)
        scripts = [s for s in self.stages if s is not UPSCALE]
        for script in scripts:
            self._call(script, "process_firstpass", pp, info)
        for stage in self.stages:
            if pp.disable_processing:
                break
            if stage is UPSCALE:
                pp.image = upscale(pp.image, info)
            else:
                self._call(stage, "process", pp, info)
        return pp.image

    def _call(self, script: ScriptPostprocessing, method: str, pp: PostprocessedImage, info: dict) -> None:
        try:
            getattr(script, method)(pp, **self.args[script.name])
        except Exception:  # noqa: BLE001 - an extension's failure is reported, the Extras run goes on
            log.exception("Extras script %r (%s) failed in %s; skipped", script.name, script.filename, method)
        for key, value in pp.info.items():
            info.setdefault(key, value)
