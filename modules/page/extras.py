"""The Extras tab: upscale one image or a batch, as A1111's (spec 9.5 fields, "Postprocess ..." infotext).

``create_extras_tab(engine)`` inside an open ``gr.Tab("Extras")``. The work is
``modules.postprocessing.run_postprocessing`` (the API's extras endpoints use it too); :func:`run_extras_ui`
is the tab's handler without Gradio, so tests drive it with real pixels. Results are saved to the
``outdir_extras_samples`` folder and shown in the ``extras_gallery`` with their infotext.
"""
from __future__ import annotations

import html
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image, UnidentifiedImageError

from modules.core.request import RequestError
from modules.engine.postprocessing import ExtrasParams, run_postprocessing
from modules.models.upscalers import UpscalerUnavailable

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

SINGLE, BATCH = 0, 1  # which input sub-tab
SCALE_BY, SCALE_TO = 0, 1  # resize_mode


@dataclass
class ExtrasOutput:
    images: list[Image.Image] = field(default_factory=list)
    html_info: str = ""  # the last image's infotext, as HTML (A1111's html_info)
    error: str = ""  # one readable line, empty when all went well
    saved_paths: list[str] = field(default_factory=list)

    def status_html(self) -> str:
        if self.error:
            return f'<div class="sd-extras-error">{html.escape(self.error)}</div>'
        if not self.saved_paths:
            return ""
        where = os.path.dirname(self.saved_paths[-1])
        n = len(self.saved_paths)
        return (f'<div class="sd-extras-saved">Saved {n} image{"" if n == 1 else "s"} to '
                f'{html.escape(where)}</div>')


def _open(source: Any) -> tuple[Image.Image, str | None]:
    """A PIL image and its file name from a path (what gr.Image/gr.File give) or an image; the file's text chunks
    (e.g. ``parameters``) stay in ``image.info``, so the result keeps them."""
    if isinstance(source, Image.Image):
        return source, None
    path = str(getattr(source, "name", source))  # older Gradio versions gave file wrappers
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy(), Path(path).name  # copy() keeps .info
    except (OSError, UnidentifiedImageError) as e:
        raise RequestError("image", f"{Path(path).name} is not an image that can be read ({e})") from None


def run_extras_ui(engine: Engine, *, mode: int = SINGLE, image: Any = None, files: Sequence[Any] | None = None,
                  resize_mode: int = SCALE_BY, upscaling_resize: float = 4.0, upscaling_resize_w: int = 512,
                  upscaling_resize_h: int = 512, upscaling_crop: bool = True, upscaler_1: str | None = "None",
                  upscaler_2: str | None = "None", extras_upscaler_2_visibility: float = 0.0,
                  save: bool = True, scripts: Any = None) -> ExtrasOutput:
    """The tab's "Generate": never raises for bad input; the reason, naming the field, is in ``error``.
    ``scripts``: the extensions' Extras scripts with the tab's values (``ScriptHost.extras_scripts``)."""
    try:
        if mode == BATCH:
            if not files:
                raise RequestError("image_batch", "choose one or more image files first")
            inputs = [_open(f) for f in files]
        else:
            if image is None:
                raise RequestError("image", "choose an image first")
            inputs = [_open(image)]
        params = ExtrasParams(
            resize_mode=int(resize_mode), upscaling_resize=float(upscaling_resize),
            upscaling_resize_w=int(upscaling_resize_w), upscaling_resize_h=int(upscaling_resize_h),
            upscaling_crop=bool(upscaling_crop), upscaler_1=upscaler_1 or "None", upscaler_2=upscaler_2 or "None",
            extras_upscaler_2_visibility=float(extras_upscaler_2_visibility or 0.0))
        result = run_postprocessing(engine, inputs, params, save=save, scripts=scripts)
    except RequestError as e:
        return ExtrasOutput(error=f"{e.field}: {e.message}")
    except UpscalerUnavailable as e:
        return ExtrasOutput(error=str(e))
    except (OSError, ValueError, RuntimeError) as e:  # a file that cannot be written, a model that fails
        log.exception("extras failed")
        return ExtrasOutput(error=f"{type(e).__name__}: {e}")
    info = result.html_info
    if result.warnings:
        info += "".join(f"<p>{html.escape(w)}</p>" for w in result.warnings)
    if result.interrupted:
        info += "<p>Interrupted</p>"
    return ExtrasOutput(images=result.images, html_info=info, saved_paths=result.saved_paths)


@dataclass
class ExtrasTab:
    image: Any  # gr.Image (extras_image): the single image input, for "Send to extras"
    batch_files: Any  # gr.File (extras_image_batch)
    gallery: Any  # gr.Gallery (extras_gallery)
    html_info: Any  # gr.HTML (html_info_extras)
    status: Any  # gr.HTML (extras_status)
    submit: Any  # gr.Button (extras_generate)
    upscaler_1: Any
    upscaler_2: Any
    tab_single: Any
    tab_batch: Any


def _upscaler_names(engine: Engine) -> list[str]:
    return list(engine.upscalers.names())


def _extras_script_controls(engine: Engine) -> list[tuple[str, str, Any]]:
    """The extensions' Extras scripts' controls, built here (their ``ui()``): (script name, control name,
    component) in A1111's order. A script whose UI fails is left out and logged."""
    import gradio as gr

    from modules.scripting import runtime
    from modules.scripting.a1111_scripts import postproc_runner
    from modules.scripting.gradio3_compat import extension_ui
    from modules.scripting.postprocessing_main_ui import extras_scripts_of
    from modules.scripting.postprocessing_scripts import UPSCALE, preferred_order

    scripts = extras_scripts_of(postproc_runner(engine).scripts, engine.options.get("postprocessing_disable_in_extras"))
    out: list[tuple[str, str, Any]] = []
    order = engine.options.get("postprocessing_operation_order") or []
    for script in [s for s in preferred_order(scripts, order) if s is not UPSCALE]:
        try:
            with runtime.using(engine), extension_ui(), gr.Group(elem_id=f"extras_script_{len(out)}"):
                controls = dict(script.ui() or {})
        except Exception:  # noqa: BLE001 - one extension's UI must not break the tab
            log.exception("Extras script %r: its ui() failed; left out of the Extras tab", script.name)
            continue
        script.controls = controls
        out += [(str(script.name), name, control) for name, control in controls.items()]
    return out


def create_extras_tab(engine: Engine) -> ExtrasTab:
    """Build the Extras tab's contents inside the caller's open ``gr.Tab`` (A1111's elem ids)."""
    import gradio as gr

    names = _upscaler_names(engine)
    with gr.Row(equal_height=False, elem_id="extras_row"):
        with gr.Column(variant="panel", elem_id="extras_inputs"):
            mode = gr.State(SINGLE)
            resize_mode = gr.State(SCALE_BY)
            with gr.Tabs(elem_id="mode_extras"):
                with gr.Tab("Single Image", id="single_image", elem_id="extras_single_tab") as tab_single:
                    image = gr.Image(label="Source", type="filepath", image_mode=None, format="png",
                                     sources=["upload", "clipboard"], elem_id="extras_image")
                with gr.Tab("Batch Process", id="batch_process", elem_id="extras_batch_process_tab") as tab_batch:
                    batch_files = gr.File(label="Batch Process", file_count="multiple", file_types=["image"],
                                          elem_id="extras_image_batch")
            submit = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            with gr.Tabs(elem_id="extras_resize_mode"):
                with gr.Tab("Scale by", elem_id="extras_scale_by_tab") as tab_scale_by:
                    upscaling_resize = gr.Slider(1.0, 8.0, value=4.0, step=0.05, label="Resize",
                                                 elem_id="extras_upscaling_resize")
                with gr.Tab("Scale to", elem_id="extras_scale_to_tab") as tab_scale_to:
                    with gr.Row():
                        width = gr.Slider(64, 8192, value=512, step=8, label="Width",
                                          elem_id="extras_upscaling_resize_w")
                        swap = gr.Button("⇅", elem_id="extras_upscaling_res_switch_btn", scale=0, min_width=40,
                                         elem_classes=["tool"])
                        height = gr.Slider(64, 8192, value=512, step=8, label="Height",
                                           elem_id="extras_upscaling_resize_h")
                    crop = gr.Checkbox(value=True, label="Crop to fit", elem_id="extras_upscaling_crop")
            with gr.Row():
                upscaler_1 = gr.Dropdown(names, value="None", label="Upscaler 1", elem_id="extras_upscaler_1")
                refresh = gr.Button("🔄", elem_id="extras_upscaler_refresh", scale=0, min_width=40,
                                    elem_classes=["tool"])
            with gr.Row():
                upscaler_2 = gr.Dropdown(names, value="None", label="Upscaler 2", elem_id="extras_upscaler_2")
                visibility = gr.Slider(0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility",
                                       elem_id="extras_upscaler_2_visibility")
            script_controls = _extras_script_controls(engine)
        with gr.Column(variant="panel", elem_id="extras_results"):
            gallery = gr.Gallery(label="Result", elem_id="extras_gallery", format="png", columns=2, height="auto",
                                 interactive=False)
            status = gr.HTML("", elem_id="extras_status")
            html_info = gr.HTML("", elem_id="html_info_extras")

    tab_single.select(lambda: SINGLE, inputs=None, outputs=[mode], show_progress="hidden", queue=False)
    tab_batch.select(lambda: BATCH, inputs=None, outputs=[mode], show_progress="hidden", queue=False)
    tab_scale_by.select(lambda: SCALE_BY, inputs=None, outputs=[resize_mode], show_progress="hidden", queue=False)
    tab_scale_to.select(lambda: SCALE_TO, inputs=None, outputs=[resize_mode], show_progress="hidden", queue=False)
    swap.click(lambda w, h: (h, w), inputs=[width, height], outputs=[width, height], show_progress="hidden",
               queue=False)

    def refresh_upscalers(first: str, second: str) -> tuple[Any, Any]:
        engine.upscalers.refresh()
        choices = _upscaler_names(engine)
        return (gr.update(choices=choices, value=first if first in choices else "None"),
                gr.update(choices=choices, value=second if second in choices else "None"))

    refresh.click(refresh_upscalers, inputs=[upscaler_1, upscaler_2], outputs=[upscaler_1, upscaler_2],
                  show_progress="hidden")

    def generate(mode_value: int, image_value: Any, files: Any, resize_mode_value: int, factor: float, w: float,
                 h: float, crop_value: bool, first: str, second: str, vis: float,
                 *script_values: Any) -> tuple[Any, str, str]:
        from modules.scripting import runtime

        values: dict[str, dict[str, Any]] = {}
        for (script_name, control_name, _), value in zip(script_controls, script_values):
            values.setdefault(script_name, {})[control_name] = value
        out = run_extras_ui(engine, mode=mode_value, image=image_value, files=files, resize_mode=resize_mode_value,
                            upscaling_resize=factor, upscaling_resize_w=int(w), upscaling_resize_h=int(h),
                            upscaling_crop=crop_value, upscaler_1=first, upscaler_2=second,
                            extras_upscaler_2_visibility=vis, scripts=runtime.host(engine).extras_scripts(values))
        if out.error:
            return gr.update(), "", out.status_html()
        return out.images, out.html_info, out.status_html()

    submit.click(generate, inputs=[mode, image, batch_files, resize_mode, upscaling_resize, width, height, crop,
                                   upscaler_1, upscaler_2, visibility] + [c for _, _, c in script_controls],
                 outputs=[gallery, html_info, status])
    return ExtrasTab(image=image, batch_files=batch_files, gallery=gallery, html_info=html_info, status=status,
                     submit=submit, upscaler_1=upscaler_1, upscaler_2=upscaler_2, tab_single=tab_single,
                     tab_batch=tab_batch)


__all__ = ["BATCH", "SCALE_BY", "SCALE_TO", "SINGLE", "ExtrasOutput", "ExtrasTab", "create_extras_tab",
           "run_extras_ui"]
