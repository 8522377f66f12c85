"""The web page: A1111's tabs (txt2img, img2img, Extras, PNG Info, Train, extension tabs, Settings, Extensions).

This module only assembles the pieces each ``ui_*`` module builds and connects them to one another
("Send to img2img", the checkpoint card switching the top bar). Every generation goes through
the script layer (``ScriptHost.generate``) via :mod:`modules.page.generation`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import gradio as gr

from modules.page import extensions as ui_extensions
from modules.page import extra_networks as ui_extra_networks
from modules.page import extras as ui_extras
from modules.page import merger as ui_merger
from modules.page import generation as ui_generation
from modules.page import paste as ui_paste
from modules.page import pnginfo as ui_pnginfo
from modules.page import routes as ui_routes
from modules.page import scripts as ui_scripts
from modules.page import settings as ui_settings
from modules.page import style_editor
from modules.page import train as ui_train

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost

log = logging.getLogger(__name__)

HOW_TO_ADD = (
    "No checkpoint in `models/Stable-diffusion`: running on the small built-in demo model. Put a `.safetensors` "
    "checkpoint (SD 1.x, SD 2.x or SDXL) there and press 🔄 next to the checkpoint list."
)


def mount(app: Any, host: "ScriptHost", *, tasks: Any = None, restart: Any = None) -> gr.Blocks:
    """Build the page and mount it at "/" of ``app`` (a FastAPI app), with the routes its scripts call;
    extensions add their routes first (A1111's ``on_app_started``), before "/" would catch them."""
    engine = host.engine
    ui_routes.mount_ui_routes(app, engine)
    ui_extra_networks.mount_extra_networks_routes(app, engine)
    from modules.scripting.component_hooks import component_callbacks

    with component_callbacks(host):  # extensions' before/after_component hooks see every control (A1111)
        demo = create_ui(host, tasks=tasks, restart=restart)
    host.callbacks.run("app_started", demo, app)
    gr.mount_gradio_app(app, demo, path="/", head=page_head(host))
    return demo


def page_head(host: "ScriptHost") -> str:
    """Scripts and styles for the whole page (given to ``mount_gradio_app(head=...)``)."""
    return ui_routes.head_html() + ui_extra_networks.head_html() + ui_extensions.extensions_head_html(host)


def create_ui(host: "ScriptHost", *, tasks: Any = None, restart: Any = None) -> gr.Blocks:
    """The page. ``tasks``: the app's TaskTracker (queue positions in the progress bar); ``restart``: what the
    Extensions tab calls to restart the server after enabling or disabling extensions."""
    engine = host.engine
    ui_extensions.before_ui(host)
    with gr.Blocks(title="Stable Diffusion", analytics_enabled=False) as demo:
        with gr.Row(elem_id="quicksettings"):
            quick = ui_settings.create_quicksettings(engine)
        gr.Markdown(HOW_TO_ADD if not engine.checkpoints.list() else "", elem_id="checkpoint_notice")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                txt2img = ui_generation.create_generation_tab(
                    host, "txt2img", tasks=tasks, scripts_factory=ui_scripts.create_scripts_ui,
                    extra_networks_factory=ui_extra_networks.create_extra_networks_ui)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                img2img = ui_generation.create_generation_tab(
                    host, "img2img", tasks=tasks, scripts_factory=ui_scripts.create_scripts_ui,
                    extra_networks_factory=ui_extra_networks.create_extra_networks_ui)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras = ui_extras.create_extras_tab(engine)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                pnginfo = ui_pnginfo.create_pnginfo_tab(engine)
            with gr.Tab("Checkpoint Merger", id="modelmerger", elem_id="tab_modelmerger"):
                ui_merger.create_merger_tab(engine, quicksettings=quick)
            with gr.Tab("Train", id="train", elem_id="tab_train"):
                ui_train.create_train_tab(engine)
            for blocks, title, elem_id in ui_extensions.extension_tabs(host):
                with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    blocks.render()
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                ui_settings.create_settings_tab(engine, quicksettings=quick)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                ui_extensions.create_extensions_tab(host, restart=restart)

        _connect_styles(engine, [txt2img, img2img])
        _connect_native_size(engine, quick, [txt2img, img2img])
        _connect_send_to(host, tabs, txt2img, img2img, extras, pnginfo)
        for tab in (txt2img, img2img):
            ui_paste.connect_paste(tab.paste, tab.prompt, _paste_targets(tab), engine, tab.is_img2img,
                                   callbacks=host.callbacks, status=tab.results.log_html, paste_last_when_empty=True)
    return demo


def _paste_targets(tab: ui_generation.GenerationTab) -> dict[str, Any]:
    targets = dict(tab.fields)
    if "seed_extras" in tab.extras:
        targets["seed_extras"] = tab.extras["seed_extras"]
    if tab.scripts is not None:  # the scripts' own infotext fields (Soft inpainting's, extensions')
        for script in tab.scripts.runner.scripts:
            for component, source in getattr(script, "infotext_fields", None) or []:
                if component is not None and source is not None:
                    targets[ui_paste.PastedParam(source)] = component
    return targets


def _connect_styles(engine: Engine, tabs: list[ui_generation.GenerationTab]) -> None:
    style_editor.connect(engine, tabs, lambda messages: ui_generation.log_html(messages))


def _connect_native_size(engine: Engine, quick: ui_settings.Quicksettings,
                         tabs: list[ui_generation.GenerationTab]) -> None:
    """After a checkpoint change (top bar, Settings, a checkpoint card), width and height that still show the old
    model's native size take the new model's."""
    shown = gr.State(lambda: ui_generation.native_size(engine))  # the native size the sliders started from
    sizes = [t.fields[k] for t in tabs for k in ("width", "height")]

    def follow(previous, *values):
        new = ui_generation.native_size(engine)
        out: list[Any] = [new]
        for i in range(0, len(values), 2):
            size = ui_generation.size_after_model_change(previous, values[i:i + 2], new)
            out += [gr.update(), gr.update()] if size is None else list(size)
        return out

    gr.on([quick.status.change, quick.sync_button.click], follow, inputs=[shown, *sizes], outputs=[shown, *sizes],
          show_progress="hidden", queue=False, api_visibility="private")


ACTIVATE_BRUSH = "() => sdUi.activateBrush('img2maskimg')"  # see javascript/ui.js


def _connect_send_to(host: "ScriptHost", tabs: gr.Tabs, txt2img: Any, img2img: Any, extras: Any, pnginfo: Any) -> None:
    """Results' and PNG Info's "Send to" buttons: the image and its generation parameters go along."""
    engine = host.engine
    init_image = img2img.extras["init_image"]
    editor = img2img.extras["inpaint_editor"]
    mode = img2img.extras["mode"]
    controls = img2img.extras["inpaint_controls"]
    shown_for = ui_generation.inpaint_controls_update

    def to_img2img(gallery, index):
        image = ui_generation.selected_image(gallery, index)
        return (gr.update(selected="img2img"), gr.update(selected="img2img_img2img_tab"), image, "img2img",
                shown_for("img2img"))

    def to_inpaint(gallery, index):
        image = ui_generation.selected_image(gallery, index)
        value = {"background": image, "layers": [], "composite": image} if image is not None else None
        return (gr.update(selected="img2img"), gr.update(selected="img2img_inpaint_tab"), value, "inpaint",
                shown_for("inpaint"))

    def to_extras(gallery, index):
        return gr.update(selected="extras"), ui_generation.selected_image(gallery, index)

    for source in (txt2img, img2img):
        res = source.results
        res.send_to_img2img.click(to_img2img, inputs=[res.gallery, res.selected],
                                  outputs=[tabs, img2img.img2img_tabs, init_image, mode, controls],
                                  api_visibility="private")
        res.send_to_inpaint.click(to_inpaint, inputs=[res.gallery, res.selected],
                                  outputs=[tabs, img2img.img2img_tabs, editor, mode, controls],
                                  api_visibility="private").then(None, js=ACTIVATE_BRUSH, queue=False)
        res.send_to_extras.click(to_extras, inputs=[res.gallery, res.selected], outputs=[tabs, extras.image],
                                 api_visibility="private")
        for button in (res.send_to_img2img, res.send_to_inpaint):
            ui_paste.connect_paste(button, res.infotext, _paste_targets(img2img), engine, True,
                                   callbacks=host.callbacks)

    # What could not be pasted (an upscaler or LoRA not here ...) is said in the receiving tab's log line.
    ui_paste.connect_paste(pnginfo.send_to_txt2img, pnginfo.infotext, _paste_targets(txt2img), engine, False,
                           callbacks=host.callbacks, tabs=tabs, tab_id="txt2img", status=txt2img.results.log_html)
    ui_paste.connect_paste(pnginfo.send_to_img2img, pnginfo.infotext, _paste_targets(img2img), engine, True,
                           callbacks=host.callbacks, tabs=tabs, tab_id="img2img", status=img2img.results.log_html)
    pnginfo.send_to_img2img.click(
        lambda image: (image, "img2img", gr.update(selected="img2img_img2img_tab"), shown_for("img2img")),
        inputs=pnginfo.image, outputs=[init_image, mode, img2img.img2img_tabs, controls], api_visibility="private")
    ui_paste.connect_paste(pnginfo.send_to_inpaint, pnginfo.infotext, _paste_targets(img2img), engine, True,
                           callbacks=host.callbacks, tabs=tabs, tab_id="img2img", status=img2img.results.log_html)
    pnginfo.send_to_inpaint.click(
        lambda image: ({"background": image, "layers": [], "composite": image} if image is not None else None,
                       "inpaint", gr.update(selected="img2img_inpaint_tab"), shown_for("inpaint")),
        inputs=pnginfo.image, outputs=[editor, mode, img2img.img2img_tabs, controls], api_visibility="private",
    ).then(None, js=ACTIVATE_BRUSH, queue=False)
    pnginfo.send_to_extras.click(lambda image: (gr.update(selected="extras"), image), inputs=pnginfo.image,
                              outputs=[tabs, extras.image], api_visibility="private")
