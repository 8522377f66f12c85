"""A1111's setting "Enable postprocessing operations in txt2img and img2img tabs"
(``postprocessing_enable_in_main_ui``): each Extras operation it names (the built-in "Upscale" and extensions'
``ScriptPostprocessing`` scripts) also runs on every txt2img / img2img picture.

As in A1111, each becomes an always-on script of the tab (:class:`MainUIPostprocessing`): its controls are the
Extras script's ``ui()`` controls (so API clients give their values through ``alwayson_scripts`` by the
operation's name, lower-cased), and in ``postprocess_image`` it runs ``process_firstpass`` then ``process`` on a
``PostprocessedImage`` of the picture; what the script puts in ``pp.info`` joins the picture's infotext
(``p.extra_generation_params``). The list is read when a tab's scripts are made (A1111 needs a restart too).

``postprocessing_disable_in_extras`` removes names from the Extras tab and endpoints (:func:`extras_scripts_of`).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

from modules.scripting import runtime
from modules.scripting.postprocessing_scripts import UPSCALE, PostprocessedImage, ScriptPostprocessing
from modules.scripting.scripts import AlwaysVisible, Script

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)


class BuiltinUpscale(ScriptPostprocessing):
    """The Extras "Upscale" operation as a script, for the main tabs (A1111's ``postprocessing_upscale.py``
    control names). With upscaler "None" it leaves the picture alone."""

    name = UPSCALE
    order = 1000

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def ui(self) -> dict:
        import gradio as gr

        names = list(self.engine.upscalers.names())
        with gr.Group():
            return {
                "upscale_enabled": gr.Checkbox(label="Upscale", value=True),
                "upscale_mode": gr.Radio(label="Resize mode", choices=["Scale by", "Scale to"], value="Scale by",
                                         type="index"),
                "upscale_by": gr.Slider(minimum=1.0, maximum=8.0, step=0.05, label="Resize", value=2.0),
                "upscale_to_width": gr.Slider(minimum=64, maximum=8192, step=8, label="Width", value=512),
                "upscale_to_height": gr.Slider(minimum=64, maximum=8192, step=8, label="Height", value=512),
                "upscale_crop": gr.Checkbox(label="Crop to fit", value=True),
                "upscaler_1_name": gr.Dropdown(label="Upscaler 1", choices=names, value="None"),
                "upscaler_2_name": gr.Dropdown(label="Upscaler 2", choices=names, value="None"),
                "upscaler_2_visibility": gr.Slider(minimum=0.0, maximum=1.0, step=0.001, label="Upscaler 2 visibility",
                                                   value=0.0),
            }

    def process(self, pp: PostprocessedImage, upscale_enabled: bool = True, upscale_mode: Any = 0,
                upscale_by: float = 2.0, upscale_to_width: int = 512, upscale_to_height: int = 512,
                upscale_crop: bool = True, upscaler_1_name: str | None = "None", upscaler_2_name: str | None = "None",
                upscaler_2_visibility: float = 0.0, **_ignored: Any) -> None:
        from modules.models import upscalers

        if not upscale_enabled or not upscaler_1_name or upscaler_1_name == "None":
            return
        mode = 1 if upscale_mode in (1, "Scale to") else 0
        pp.image = upscalers.run_extras(
            pp.image, resize_mode=mode, upscaling_resize=float(upscale_by), upscaling_resize_w=int(upscale_to_width),
            upscaling_resize_h=int(upscale_to_height), upscaling_crop=bool(upscale_crop), upscaler_1=upscaler_1_name,
            upscaler_2=upscaler_2_name, extras_upscaler_2_visibility=float(upscaler_2_visibility),
            registry=self.engine.upscalers, info=pp.info)


def operation_names(engine: "Engine") -> list[str]:
    """The Extras operations a user can name in the postprocessing settings: "Upscale", then the extensions'."""
    names = [UPSCALE]
    for data in runtime.host(engine).scripts.postprocessing_data:
        name = getattr(data.script_class, "name", None)
        if name and name not in names:
            names.append(str(name))
    return names


def extras_scripts_of(scripts: Sequence[ScriptPostprocessing], disabled: Sequence[str] | None) -> list[ScriptPostprocessing]:
    """The Extras tab's scripts without those ``postprocessing_disable_in_extras`` names."""
    off = set(disabled or [])
    return [s for s in scripts if s.name not in off]


def main_ui_scripts(engine: "Engine", is_img2img: bool, classes: Sequence[type]) -> list[Any]:
    """One always-on script per operation named in ``postprocessing_enable_in_main_ui`` (``classes``: the loaded
    Extras script classes), in A1111's order (``postprocessing_operation_order``, then each one's ``order``).
    Each gets its own instance: the Extras tab keeps its own and their controls."""
    from modules.scripting.postprocessing_scripts import preferred_order

    wanted = list(engine.options.get("postprocessing_enable_in_main_ui") or [])
    if not wanted:
        return []
    made: list[ScriptPostprocessing] = []
    for cls in classes:
        if getattr(cls, "name", None) not in wanted:
            continue
        try:
            made.append(cls())
        except Exception as exc:  # noqa: BLE001 - reported; the tab goes on without it
            log.error("Extras script %r could not be made for the main tabs: %s", cls.name, exc)
    stages = preferred_order(made, engine.options.get("postprocessing_operation_order") or [])
    out = []
    for stage in stages:
        if stage == UPSCALE:
            if UPSCALE not in wanted:
                continue
            stage = BuiltinUpscale(engine)
        out.append(MainUIPostprocessing(stage, is_img2img))
    return out


class MainUIPostprocessing(Script):
    """An Extras script as an always-on script of a main tab (A1111's ``ScriptPostprocessingForMainUI``)."""

    def __init__(self, script: ScriptPostprocessing, is_img2img: bool) -> None:
        self.script = script
        self.keys: list[str] = []
        self.filename = script.filename or getattr(type(script), "__module__", "")
        self.is_img2img = is_img2img

    def title(self) -> str:
        return str(self.script.name)

    def show(self, is_img2img: bool) -> Any:
        return AlwaysVisible

    def ui(self, is_img2img: bool) -> list:
        controls = dict(self.script.ui() or {})
        self.script.controls = controls
        self.keys = list(controls)
        return list(controls.values())

    def postprocess_image(self, p: Any, pp: Any, *args: Any) -> None:
        values = dict(zip(self.keys, args))
        image = PostprocessedImage(pp.image.copy())
        self.script.process_firstpass(image, **values)
        if not image.disable_processing:
            self.script.process(image, **values)
        p.extra_generation_params.update(image.info)
        pp.image = image.image
