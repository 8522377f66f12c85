"""The txt2img and img2img tabs: the form, Generate / Interrupt / Skip, and the results column.

UI code here only turns component values into a GenerationRequest (:func:`build_request`) and shows
what ``engine.generate`` returned (through :mod:`modules.ui_run`). Element ids are A1111's, so user
CSS/JS and extension code that look for ``#txt2img_prompt`` or ``#img2img_denoising_strength`` work.
"""
from __future__ import annotations

import html
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import gradio as gr
from PIL import Image

from modules.core import samplers
from modules.engine import img2img_batch
from modules.page import img2img_modes
from modules.page import overrides as override_chips
from modules.page import run as ui_run
from modules.page import save_images
from modules.page import style_editor
from modules.page.paste import open_image
from modules.core.request import GenerationRequest, RequestError

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost

log = logging.getLogger(__name__)

RESIZE_MODES = ["Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)"]
INPAINT_FILL = ["fill", "original", "latent noise", "latent nothing"]
MASK_MODES = ["Inpaint masked", "Inpaint not masked"]
INPAINT_AREAS = ["Whole picture", "Only masked"]
IMG2IMG_MODES = ("img2img", "sketch", "inpaint", "inpaint sketch", "inpaint upload", "batch")

# Request fields read straight from a component of the same name (the paste targets as well).
TXT2IMG_FIELDS = (
    "prompt", "negative_prompt", "styles", "sampler_name", "scheduler", "steps", "width", "height", "n_iter",
    "batch_size", "cfg_scale", "seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h",
    "enable_hr", "hr_upscaler", "hr_second_pass_steps", "denoising_strength", "hr_scale", "hr_resize_x",
    "hr_resize_y", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt", "override_settings",
)
IMG2IMG_FIELDS = (
    "prompt", "negative_prompt", "styles", "sampler_name", "scheduler", "steps", "width", "height", "n_iter",
    "batch_size", "cfg_scale", "seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h",
    "denoising_strength", "resize_mode", "mask_blur", "inpainting_fill", "inpaint_full_res",
    "inpaint_full_res_padding", "inpainting_mask_invert", "override_settings",
)
# Extra (non-request) inputs, in this order after the fields.
EXTRA_INPUTS = ("id_task", "seed_extras", "mode", "init_image", "inpaint_editor", "inpaint_upload_image",
                "inpaint_upload_mask", "resize_by_selected", "scale_by", "sketch_editor", "inpaint_sketch_editor",
                "mask_alpha", *img2img_modes.BATCH_NAMES)


@dataclass
class Results:
    gallery: gr.Gallery
    infotext_html: gr.HTML
    infotext: gr.Textbox  # the selected image's infotext, plain (paste source for "send to")
    log_html: gr.HTML
    state: gr.State  # [{"infotext", "seed", "subseed"}] per gallery image
    selected: gr.State  # index of the selected gallery image
    open_folder: gr.Button
    send_to_img2img: gr.Button
    send_to_inpaint: gr.Button
    send_to_extras: gr.Button
    save: gr.Button  # 💾
    save_zip: gr.Button  # 🗃️
    download: gr.File  # what 💾 / 🗃️ wrote, to download


@dataclass
class GenerationTab:
    tabname: str
    fields: dict[str, gr.Component]
    extras: dict[str, gr.Component]
    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    styles: gr.Dropdown
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    paste: gr.Button
    style_edit_button: gr.Button  # 🖌️: opens the style editor
    style_editor: style_editor.StyleEditor
    results: Results
    scripts: Any = None
    img2img_tabs: gr.Tabs | None = None
    send_targets: dict[str, gr.Component] = field(default_factory=dict)

    @property
    def is_img2img(self) -> bool:
        return self.tabname == "img2img"


# --- pure helpers -------------------------------------------------------------------------------

def native_size(engine: Engine) -> tuple[int, int]:
    size = getattr(engine, "native_size", None)
    if callable(size):
        try:
            w, h = size()
            return int(w), int(h)
        except Exception:  # noqa: BLE001 - no model yet: A1111's default
            pass
    return 512, 512


def size_after_model_change(previous_native: tuple[int, int], current: tuple[int, int],
                            new_native: tuple[int, int]) -> tuple[int, int] | None:
    """The (width, height) a tab should show once the loaded model's native size went from ``previous_native``
    to ``new_native``, or None to leave it: a size the user chose stays, one still at the old model's native
    size follows the new model (the 64 px demo model, then a 512 px SD1 checkpoint)."""
    current, previous_native, new_native = tuple(map(int, current)), tuple(previous_native), tuple(new_native)
    if previous_native == new_native or current != previous_native:
        return None
    return new_native


def mask_from_editor(value: Any) -> tuple[Image.Image | None, Image.Image | None]:
    """(background RGB, mask L) from an ImageEditor value: the mask is every pixel a brush layer covers."""
    if not isinstance(value, dict) or value.get("background") is None:
        return None, None
    background = open_image(value["background"])
    mask = Image.new("L", background.size, 0)
    for layer in value.get("layers") or []:
        layer = open_image(layer)
        if layer is None:
            continue
        alpha = layer.convert("RGBA").getchannel("A")
        if alpha.size != background.size:
            alpha = alpha.resize(background.size, Image.NEAREST)
        mask.paste(255, (0, 0), alpha.point(lambda a: 255 if a > 0 else 0))
    return background.convert("RGB"), mask if mask.getbbox() else None


def upload_mask(image: Any) -> Image.Image | None:
    """An uploaded mask: white is inpainted. A transparent PNG counts by its alpha (A1111 merges alpha in)."""
    image = open_image(image)
    if image is None:
        return None
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        lum = rgba.convert("L")
        alpha = rgba.getchannel("A")
        return Image.composite(lum, Image.new("L", image.size, 0), alpha)
    return image.convert("L")


def _index(choices: list[str], value: Any, default: int = 0) -> int:
    if isinstance(value, int):
        return value
    return choices.index(value) if value in choices else default


def build_request(tabname: str, values: dict[str, Any]) -> GenerationRequest:
    """The GenerationRequest for the form values of one tab (keys: the tab's fields and EXTRA_INPUTS)."""
    is_img2img = tabname == "img2img"
    names = IMG2IMG_FIELDS if is_img2img else TXT2IMG_FIELDS
    fields = {name: values[name] for name in names if name in values}
    for name in ("steps", "width", "height", "n_iter", "batch_size", "seed", "subseed", "seed_resize_from_w",
                 "seed_resize_from_h", "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "mask_blur",
                 "inpaint_full_res_padding"):
        if name in fields:
            value = fields[name]
            fields[name] = -1 if value in (None, "") and "seed" in name else int(float(value if value is not None else 0))
    for name in ("cfg_scale", "subseed_strength", "denoising_strength", "hr_scale"):
        if name in fields and fields[name] is not None:
            fields[name] = float(fields[name])
    fields["styles"] = list(fields.get("styles") or [])
    fields["override_settings"] = override_chips.overrides_from_tokens(fields.get("override_settings"))
    if not values.get("seed_extras"):  # extras hidden: A1111 ignores their values
        fields.update(subseed_strength=0.0, seed_resize_from_w=0, seed_resize_from_h=0)
    for name in ("seed_resize_from_w", "seed_resize_from_h"):
        if fields.get(name, 0) <= 0:
            fields[name] = -1
    for name, default in (("hr_sampler_name", "Use same sampler"), ("hr_scheduler", "Use same scheduler")):
        if fields.get(name) == default:
            fields[name] = None
    fields.update(refiner_fields(values))
    if not is_img2img:
        fields["enable_hr"] = bool(fields.get("enable_hr"))
        return GenerationRequest(**fields)

    fields["resize_mode"] = _index(RESIZE_MODES, fields.get("resize_mode"))
    fields["inpainting_fill"] = _index(INPAINT_FILL, fields.get("inpainting_fill"), 1)
    fields["inpaint_full_res"] = _index(INPAINT_AREAS, fields.get("inpaint_full_res")) == 1
    fields["inpainting_mask_invert"] = _index(MASK_MODES, fields.get("inpainting_mask_invert"))
    mode = values.get("mode") or "img2img"
    mask = None
    if mode == "inpaint":
        init, mask = mask_from_editor(values.get("inpaint_editor"))
        if init is None:
            raise RequestError("init_images", "Inpaint: upload an image to paint a mask on")
        if mask is None:
            raise RequestError("mask", "Inpaint: draw over the part of the image to repaint (the mask is empty)")
    elif mode == "inpaint upload":
        init = open_image(values.get("inpaint_upload_image"))
        mask = upload_mask(values.get("inpaint_upload_mask"))
        if init is None:
            raise RequestError("init_images", "Inpaint upload: upload the image to repaint")
        if mask is None:
            raise RequestError("mask", "Inpaint upload: upload a mask (white = repaint)")
    elif mode == "inpaint sketch":
        init, mask = img2img_modes.inpaint_sketch_parts(values.get("inpaint_sketch_editor"),
                                                        mask_alpha=float(values.get("mask_alpha") or 0),
                                                        mask_blur=float(fields.get("mask_blur") or 0))
        if init is None:
            raise RequestError("init_images", "Inpaint sketch: upload an image to draw on")
        if mask is None:
            raise RequestError("mask", "Inpaint sketch: draw over the part of the image to repaint")
    elif mode == "sketch":
        init = img2img_modes.sketch_init(values.get("sketch_editor"))
        if init is None:
            raise RequestError("init_images", "Sketch: upload an image to draw on")
        fields.pop("mask_blur", None)
    elif mode == "batch":  # the pictures come from the input folder, one request each (img2img_batch)
        mask_blur = fields.pop("mask_blur", None)
        request = GenerationRequest(**fields)
        if mask_blur is not None:
            request.mask_blur = int(mask_blur)
        return request
    else:
        init = open_image(values.get("init_image"))
        if init is None:
            raise RequestError("init_images", "img2img: upload an image first")
        fields.pop("mask_blur", None)
    init = init.convert("RGB")
    if values.get("resize_by_selected"):
        scale = float(values.get("scale_by") or 1.0)
        fields["width"] = max(64, int(init.width * scale / 8 + 0.5) * 8)
        fields["height"] = max(64, int(init.height * scale / 8 + 0.5) * 8)
    mask_blur = fields.pop("mask_blur", None)
    request = GenerationRequest(**fields, init_images=[init], mask=mask)
    if mask_blur is not None:
        request.mask_blur = int(mask_blur)
    return request


def infotext_html(text: str) -> str:
    if not text:
        return ""
    return f'<div class="sd-infotext">{html.escape(text)}</div>'


def log_html(warnings: list[str] = (), error: str | None = None, seconds: float | None = None,
             interrupted: bool = False) -> str:
    parts = []
    if error:
        parts.append(f'<div class="sd-error"><b>Error:</b> {html.escape(error)}</div>')
    for warning in warnings:
        parts.append(f'<div class="sd-warning">{html.escape(warning)}</div>')
    if interrupted:
        parts.append('<div class="sd-warning">Interrupted: the images finished before it are kept.</div>')
    if seconds is not None:
        parts.append(f'<div class="sd-time">Time taken: {seconds:.1f} s</div>')
    return "".join(parts)


def output_folder(engine: Engine, tabname: str) -> Path:
    from modules.settings import output_paths

    return output_paths.base_directory(engine.options, engine.paths.data_dir, engine.paths.outputs_dir,
                                       is_img2img=tabname == "img2img", grid=False)


def open_folder(path: Path, *, allowed: bool) -> str:
    """Open `path` in the desktop's file manager (A1111's 📂); the page always shows where it is."""
    if not path.is_dir():
        return f"Output folder {path} does not exist yet (it is made when the first image is saved)."
    if not allowed:
        return f"Output folder: {path}"
    if sys.platform == "win32":
        os.startfile(path)  # type: ignore[attr-defined]  # noqa: S606 - the user's own folder
    else:
        opener = "open" if sys.platform == "darwin" else shutil.which("xdg-open")
        if opener is None:
            return f"Output folder: {path} (no file manager to open it with here)"
        subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    return f"Opened output folder: {path}"


# --- building -----------------------------------------------------------------------------------

def _prompt_row(engine: Engine, tab: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with gr.Row(elem_id=f"{tab}_toprow", elem_classes=["sd-toprow"]):
        with gr.Column(scale=6, elem_id=f"{tab}_prompt_container"):
            out["prompt"] = gr.Textbox(label="Prompt", lines=3, max_lines=20, elem_id=f"{tab}_prompt",
                                       placeholder="Prompt (Ctrl+Enter to generate)", elem_classes=["sd-prompt"])
            out["negative_prompt"] = gr.Textbox(label="Negative prompt", lines=2, max_lines=20,
                                                elem_id=f"{tab}_neg_prompt", placeholder="Negative prompt",
                                                elem_classes=["sd-prompt"])
        with gr.Column(scale=1, min_width=200, elem_id=f"{tab}_actions_column"):
            with gr.Row(elem_id=f"{tab}_generate_box", elem_classes=["sd-generate-box"]):
                out["generate"] = gr.Button("Generate", variant="primary", elem_id=f"{tab}_generate")
                out["interrupt"] = gr.Button("Interrupt", elem_id=f"{tab}_interrupt", elem_classes=["sd-running-only"])
                out["skip"] = gr.Button("Skip", elem_id=f"{tab}_skip", elem_classes=["sd-running-only"])
            with gr.Row(elem_classes=["sd-tools"]):
                out["paste"] = gr.Button("↙️", elem_id=f"{tab}_paste", elem_classes=["sd-tool"], scale=0, min_width=40)
                out["clear"] = gr.Button("🗑️", elem_id=f"{tab}_clear_prompt", elem_classes=["sd-tool"], scale=0, min_width=40)
                out["style_apply"] = gr.Button("📋", elem_id=f"{tab}_style_apply", elem_classes=["sd-tool"], scale=0,
                                               min_width=40)
                out["style_edit"] = gr.Button("🖌️", elem_id=f"{tab}_style_create", elem_classes=["sd-tool"], scale=0,
                                              min_width=40)
            names = list(engine.styles.styles)
            out["styles"] = gr.Dropdown(label="Styles", choices=names, value=[], multiselect=True,
                                        elem_id=f"{tab}_styles")
            out["style_editor"] = style_editor.create(engine, tab)
    return out


def _sampler_row(tab: str, fields: dict[str, Any]) -> None:
    with gr.Row(elem_id=f"{tab}_sampler_row"):
        fields["sampler_name"] = gr.Dropdown(label="Sampling method", choices=[s.name for s in samplers.SAMPLERS],
                                             value="DPM++ 2M", elem_id=f"{tab}_sampling")
        fields["scheduler"] = gr.Dropdown(label="Schedule type", choices=[s.label for s in samplers.SCHEDULERS],
                                          value="Automatic", elem_id=f"{tab}_scheduler")
        fields["steps"] = gr.Slider(1, 150, value=20, step=1, label="Sampling steps", elem_id=f"{tab}_steps")


def _size_rows(engine: Engine, tab: str, fields: dict[str, Any]) -> gr.Button:
    # callables: evaluated on every page load, so a reload shows the native size of the model loaded then
    with gr.Row(elem_id=f"{tab}_dimensions_row"):
        with gr.Column(scale=4):
            fields["width"] = gr.Slider(64, 2048, value=lambda: native_size(engine)[0], step=8, label="Width",
                                        elem_id=f"{tab}_width")
            fields["height"] = gr.Slider(64, 2048, value=lambda: native_size(engine)[1], step=8, label="Height",
                                         elem_id=f"{tab}_height")
        swap = gr.Button("⇅", elem_id=f"{tab}_res_switch_btn", elem_classes=["sd-tool"], scale=0, min_width=40)
        with gr.Column(scale=2):
            fields["n_iter"] = gr.Slider(1, 100, value=1, step=1, label="Batch count", elem_id=f"{tab}_batch_count")
            fields["batch_size"] = gr.Slider(1, 8, value=1, step=1, label="Batch size", elem_id=f"{tab}_batch_size")
    swap.click(None, inputs=[fields["width"], fields["height"]], outputs=[fields["width"], fields["height"]],
               js="(w, h) => [h, w]", queue=False)
    return swap


def _seed_rows(tab: str, fields: dict[str, Any], extras: dict[str, Any]) -> dict[str, gr.Button]:
    buttons: dict[str, gr.Button] = {}
    with gr.Row(elem_id=f"{tab}_seed_row"):
        fields["seed"] = gr.Number(label="Seed", value=-1, precision=0, elem_id=f"{tab}_seed", scale=4)
        buttons["random_seed"] = gr.Button("🎲", elem_id=f"{tab}_random_seed", elem_classes=["sd-tool"], scale=0, min_width=40)
        buttons["reuse_seed"] = gr.Button("♻️", elem_id=f"{tab}_reuse_seed", elem_classes=["sd-tool"], scale=0, min_width=40)
        extras["seed_extras"] = gr.Checkbox(label="Extra", value=False, elem_id=f"{tab}_subseed_show", scale=1)
    with gr.Group(visible=False, elem_id=f"{tab}_seed_extras") as group:
        with gr.Row():
            fields["subseed"] = gr.Number(label="Variation seed", value=-1, precision=0, elem_id=f"{tab}_subseed", scale=4)
            buttons["random_subseed"] = gr.Button("🎲", elem_id=f"{tab}_random_subseed", elem_classes=["sd-tool"], scale=0,
                                                  min_width=40)
            buttons["reuse_subseed"] = gr.Button("♻️", elem_id=f"{tab}_reuse_subseed", elem_classes=["sd-tool"], scale=0,
                                                 min_width=40)
            fields["subseed_strength"] = gr.Slider(0, 1, value=0, step=0.01, label="Variation strength",
                                                   elem_id=f"{tab}_subseed_strength", scale=4)
        with gr.Row():
            fields["seed_resize_from_w"] = gr.Slider(0, 2048, value=0, step=8, label="Resize seed from width",
                                                     elem_id=f"{tab}_seed_resize_from_w")
            fields["seed_resize_from_h"] = gr.Slider(0, 2048, value=0, step=8, label="Resize seed from height",
                                                     elem_id=f"{tab}_seed_resize_from_h")
    extras["seed_extras"].change(lambda shown: gr.update(visible=bool(shown)), inputs=extras["seed_extras"],
                                 outputs=group, queue=False, show_progress="hidden")
    for name, target in (("random_seed", "seed"), ("random_subseed", "subseed")):
        buttons[name].click(None, outputs=fields[target], js="() => -1", queue=False)
    return buttons


def _hires_group(engine: Engine, tab: str, fields: dict[str, Any]) -> None:
    fields["enable_hr"] = gr.Checkbox(label="Hires. fix", value=False, elem_id=f"{tab}_hr")
    with gr.Group(visible=False, elem_id=f"{tab}_hires_fix") as group:
        with gr.Row():
            choices = engine.upscalers.hr_choices()
            fields["hr_upscaler"] = gr.Dropdown(label="Upscaler", choices=choices,
                                                value="Latent" if "Latent" in choices else choices[0],
                                                elem_id=f"{tab}_hr_upscaler")
            fields["hr_second_pass_steps"] = gr.Slider(0, 150, value=0, step=1, label="Hires steps",
                                                       elem_id=f"{tab}_hires_steps")
            fields["denoising_strength"] = gr.Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                                     elem_id=f"{tab}_denoising_strength")
        with gr.Row():
            fields["hr_scale"] = gr.Slider(1, 4, value=2.0, step=0.05, label="Upscale by", elem_id=f"{tab}_hr_scale")
            fields["hr_resize_x"] = gr.Slider(0, 2048, value=0, step=8, label="Resize width to",
                                              elem_id=f"{tab}_hr_resize_x")
            fields["hr_resize_y"] = gr.Slider(0, 2048, value=0, step=8, label="Resize height to",
                                              elem_id=f"{tab}_hr_resize_y")
        with gr.Accordion("Hires sampler and prompts", open=False, elem_id=f"{tab}_hires_more"):
            with gr.Row():
                fields["hr_sampler_name"] = gr.Dropdown(
                    label="Hires sampling method", choices=["Use same sampler"] + [s.name for s in samplers.SAMPLERS],
                    value="Use same sampler", elem_id=f"{tab}_hr_sampler")
                fields["hr_scheduler"] = gr.Dropdown(
                    label="Hires schedule type", choices=["Use same scheduler"] + [s.label for s in samplers.SCHEDULERS],
                    value="Use same scheduler", elem_id=f"{tab}_hr_scheduler")
            fields["hr_prompt"] = gr.Textbox(label="Hires prompt", lines=2, elem_id="hires_prompt",
                                             placeholder="Empty: the same prompt")
            fields["hr_negative_prompt"] = gr.Textbox(label="Hires negative prompt", lines=2, elem_id="hires_neg_prompt",
                                                      placeholder="Empty: the same negative prompt")
    fields["enable_hr"].change(lambda on: gr.update(visible=bool(on)), inputs=fields["enable_hr"], outputs=group,
                               queue=False, show_progress="hidden")


def checkpoint_titles(engine: Engine) -> list[str]:
    return [c.title for c in engine.available_checkpoints()]


def _refiner_group(engine: Engine, tab: str, fields: dict[str, Any]) -> None:
    """A1111's Refiner accordion (element ids as its built-in script gives them): the checkpoint the sampler switches
    to, and when. The Engine does the switch (``modules/engine/refiner.py``)."""
    fields["refiner_enable"] = gr.Checkbox(label="Refiner", value=False, elem_id=f"{tab}_enable")
    with gr.Group(visible=False, elem_id=f"{tab}_refiner") as group:
        with gr.Row():
            fields["refiner_checkpoint"] = gr.Dropdown(
                label="Checkpoint", choices=checkpoint_titles(engine), value=None, elem_id=f"{tab}_checkpoint", scale=4)
            refresh = gr.Button("🔄", elem_id=f"{tab}_checkpoint_refresh", elem_classes=["sd-tool"], scale=0,
                                min_width=40)
            fields["refiner_switch_at"] = gr.Slider(
                0.01, 1.0, value=0.8, step=0.01, label="Switch at", elem_id=f"{tab}_switch_at", scale=4)
    fields["refiner_enable"].change(lambda on: gr.update(visible=bool(on)), inputs=fields["refiner_enable"],
                                    outputs=group, queue=False, show_progress="hidden")

    def refreshed():
        engine.refresh_checkpoints()
        return gr.update(choices=checkpoint_titles(engine))

    refresh.click(refreshed, outputs=fields["refiner_checkpoint"], queue=False, api_visibility="private")


def refiner_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The request's refiner fields from the accordion: none unless it is ticked and names a checkpoint."""
    name = values.get("refiner_checkpoint")
    if not values.get("refiner_enable") or name in (None, "", "None"):
        return {"refiner_checkpoint": None, "refiner_switch_at": None}
    return {"refiner_checkpoint": str(name), "refiner_switch_at": float(values.get("refiner_switch_at") or 0.8)}


def _img2img_inputs(tab: str, fields: dict[str, Any], extras: dict[str, Any]) -> gr.Tabs:
    extras["mode"] = gr.State("img2img")
    # render_children: "Send to inpaint" fills an editor whose tab was never opened; Gradio 6 drops a value sent
    # to a component it has not rendered yet.
    with gr.Tabs(elem_id="mode_img2img") as tabs:
        with gr.Tab("img2img", id="img2img_img2img_tab", elem_id="img2img_img2img_tab", render_children=True) as t_img:
            extras["init_image"] = gr.Image(label="Image for img2img", type="pil", image_mode="RGBA",
                                            sources=["upload", "clipboard"], elem_id="img2img_image", height=420)
        with gr.Tab("Sketch", id="img2img_img2img_sketch_tab", elem_id="img2img_img2img_sketch_tab", render_children=True) as t_sketch:
            img2img_modes.create_sketch(extras)
        with gr.Tab("Inpaint", id="img2img_inpaint_tab", elem_id="img2img_inpaint_tab", render_children=True) as t_inpaint:
            extras["inpaint_editor"] = gr.ImageEditor(
                label="Image for inpainting with mask", type="pil", image_mode="RGBA", sources=["upload", "clipboard"],
                brush=gr.Brush(colors=["#ffffff"], default_size=24, color_mode="fixed"), eraser=gr.Eraser(default_size=24),
                layers=False, transforms=(), elem_id="img2maskimg", height=420, format="png")  # webp would be lossy
        with gr.Tab("Inpaint sketch", id="img2img_inpaint_sketch_tab", elem_id="img2img_inpaint_sketch_tab", render_children=True) as t_isketch:
            img2img_modes.create_inpaint_sketch(extras)
        with gr.Tab("Inpaint upload", id="img2img_inpaint_upload_tab", elem_id="img2img_inpaint_upload_tab", render_children=True) as t_upload:
            with gr.Row():
                extras["inpaint_upload_image"] = gr.Image(label="Image", type="pil", image_mode="RGBA",
                                                          sources=["upload", "clipboard"], elem_id="img_inpaint_base")
                extras["inpaint_upload_mask"] = gr.Image(label="Mask (white = repaint)", type="pil", image_mode="RGBA",
                                                         sources=["upload", "clipboard"], elem_id="img_inpaint_mask")
        with gr.Tab("Batch", id="img2img_batch_tab", elem_id="img2img_batch_tab", render_children=True) as t_batch:
            img2img_modes.create_batch(extras)
    modes = ((t_img, "img2img"), (t_sketch, "sketch"), (t_inpaint, "inpaint"), (t_isketch, "inpaint sketch"),
             (t_upload, "inpaint upload"), (t_batch, "batch"))

    fields["resize_mode"] = gr.Radio(label="Resize mode", choices=RESIZE_MODES, value=RESIZE_MODES[0],
                                     elem_id="resize_mode")
    with gr.Group(visible=False, elem_id="img2img_inpaint_controls") as inpaint_controls:
        with gr.Row():
            fields["mask_blur"] = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="img2img_mask_blur")
            # Inpaint sketch only (A1111): how much of the picture shows through the drawn colours
            extras["mask_alpha"] = gr.Slider(0, 100, value=0, step=1, label="Mask transparency", visible=False,
                                             elem_id="img2img_mask_alpha")
            fields["inpainting_mask_invert"] = gr.Radio(label="Mask mode", choices=MASK_MODES, value=MASK_MODES[0],
                                                        elem_id="img2img_mask_mode")
        with gr.Row():
            fields["inpainting_fill"] = gr.Radio(label="Masked content", choices=INPAINT_FILL, value="original",
                                                 elem_id="img2img_inpainting_fill")
        with gr.Row():
            fields["inpaint_full_res"] = gr.Radio(label="Inpaint area", choices=INPAINT_AREAS, value=INPAINT_AREAS[0],
                                                  elem_id="img2img_inpaint_full_res")
            fields["inpaint_full_res_padding"] = gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                                                           elem_id="img2img_inpaint_full_res_padding")
    extras["inpaint_controls"] = inpaint_controls
    # The sub-tab's own select event sets both: a gr.State's change event does not fire in the browser.
    for t, mode in modes:
        t.select(lambda m=mode: (m, inpaint_controls_update(m), gr.update(visible=m == "inpaint sketch")),
                 outputs=[extras["mode"], inpaint_controls, extras["mask_alpha"]], queue=False, show_progress="hidden")
    return tabs


def inpaint_controls_update(mode: str) -> Any:
    """Mask blur, mask mode, masked content and inpaint area show for the modes that have a mask."""
    return gr.update(visible=mode not in ("img2img", "sketch"))


def _img2img_size(engine: Engine, tab: str, fields: dict[str, Any], extras: dict[str, Any]) -> None:
    extras["resize_by_selected"] = gr.State(False)
    with gr.Tabs(elem_id=f"{tab}_tabs_resize"):
        with gr.Tab("Resize to", id=f"{tab}_tab_resize_to") as t_to:
            _size_rows(engine, tab, fields)
        with gr.Tab("Resize by", id=f"{tab}_tab_resize_by") as t_by:
            extras["scale_by"] = gr.Slider(0.05, 4.0, value=1.0, step=0.05, label="Scale", elem_id=f"{tab}_scale")
    t_to.select(lambda: False, outputs=extras["resize_by_selected"], queue=False, show_progress="hidden")
    t_by.select(lambda: True, outputs=extras["resize_by_selected"], queue=False, show_progress="hidden")


def _results(tab: str) -> Results:
    with gr.Column(elem_id=f"{tab}_results", elem_classes=["sd-results"]):
        gallery = gr.Gallery(label="Output", show_label=False, elem_id=f"{tab}_gallery", columns=2, height=512,
                             format="png", object_fit="contain", buttons=["download", "fullscreen"], interactive=False,
                             preview=True)
        with gr.Row(elem_id=f"image_buttons_{tab}", elem_classes=["sd-image-buttons"]):
            open_folder_btn = gr.Button("📂", elem_id=f"{tab}_open_folder", elem_classes=["sd-tool"], scale=0, min_width=40)
            save_btn = gr.Button("💾", elem_id=f"save_{tab}", elem_classes=["sd-tool"], scale=0, min_width=40)
            zip_btn = gr.Button("🗃️", elem_id=f"save_zip_{tab}", elem_classes=["sd-tool"], scale=0, min_width=40)
            to_img2img = gr.Button("🖼️ img2img", elem_id=f"{tab}_send_to_img2img", size="sm", min_width=80)
            to_inpaint = gr.Button("🎨️ inpaint", elem_id=f"{tab}_send_to_inpaint", size="sm", min_width=80)
            to_extras = gr.Button("📐 extras", elem_id=f"{tab}_send_to_extras", size="sm", min_width=80)
        download = gr.File(label="Saved files", file_count="multiple", interactive=False, visible=False,
                           elem_id=f"download_files_{tab}")
        info_html = gr.HTML(elem_id=f"html_info_{tab}", elem_classes=["sd-infotext-html"])
        info_text = gr.Textbox(visible=False, elem_id=f"generation_info_{tab}")
        log = gr.HTML(elem_id=f"html_log_{tab}", elem_classes=["sd-log"])
    return Results(gallery, info_html, info_text, log, gr.State([]), gr.State(0), open_folder_btn, to_img2img,
                   to_inpaint, to_extras, save_btn, zip_btn, download)


def create_generation_tab(host: "ScriptHost", tabname: str, *, tasks: Any = None,
                          scripts_factory: Callable[..., Any] | None = None,
                          extra_networks_factory: Callable[[Any, str], Any] | None = None) -> GenerationTab:
    """Build the txt2img or img2img tab inside an open ``gr.Tab`` and wire its events."""
    engine = host.engine
    tab = tabname
    is_img2img = tab == "img2img"
    fields: dict[str, Any] = {}
    extras: dict[str, Any] = {"id_task": gr.Textbox(visible=False, elem_id=f"{tab}_id_task")}
    top = _prompt_row(engine, tab)
    fields["prompt"], fields["negative_prompt"], fields["styles"] = top["prompt"], top["negative_prompt"], top["styles"]
    img2img_tabs = None
    with gr.Row(elem_id=f"{tab}_extra_networks_and_settings", equal_height=False):
        with gr.Column(scale=1, elem_id=f"{tab}_settings"):
            with gr.Tabs(elem_id=f"{tab}_extra_tabs"):
                with gr.Tab("Generation", id=f"{tab}_generation_tab", elem_id=f"{tab}_generation_tab"):
                    if is_img2img:
                        img2img_tabs = _img2img_inputs(tab, fields, extras)
                    _sampler_row(tab, fields)
                    if is_img2img:
                        _img2img_size(engine, tab, fields, extras)
                    else:
                        _size_rows(engine, tab, fields)
                        extras["mode"] = gr.State("txt2img")
                        for name in EXTRA_INPUTS[3:]:
                            extras[name] = gr.State(None)
                    fields["cfg_scale"] = gr.Slider(1.0, 30.0, value=7.0, step=0.5, label="CFG Scale",
                                                    elem_id=f"{tab}_cfg_scale")
                    if is_img2img:
                        fields["denoising_strength"] = gr.Slider(0, 1, value=0.75, step=0.01, label="Denoising strength",
                                                                 elem_id=f"{tab}_denoising_strength")
                    seed_buttons = _seed_rows(tab, fields, extras)
                    if not is_img2img:
                        _hires_group(engine, tab, fields)
                    _refiner_group(engine, tab, fields)
                    fields["override_settings"] = override_chips.component(tab)
                    # A1111 puts scripts of section "inpaint" (Soft inpainting) among the inpaint options
                    sections = {"inpaint": extras["inpaint_controls"]} if is_img2img else {}
                    scripts = scripts_factory(host, is_img2img, sections=sections) if scripts_factory else None
                if extra_networks_factory is not None:
                    extra_networks_factory(engine, tab)
        with gr.Column(scale=1, elem_id=f"{tab}_results_column"):
            results = _results(tab)

    gt = GenerationTab(tab, fields, extras, top["prompt"], top["negative_prompt"], top["styles"], top["generate"],
                       top["interrupt"], top["skip"], top["paste"], top["style_edit"], top["style_editor"], results,
                       scripts=scripts, img2img_tabs=img2img_tabs)
    _wire_generate(host, gt, tasks)
    _wire_prompt_tools(engine, gt, top)
    _wire_results(engine, gt, seed_buttons)
    return gt


# --- events -------------------------------------------------------------------------------------

def _wire_generate(host: "ScriptHost", gt: GenerationTab, tasks: Any) -> None:
    field_names = list(gt.fields)
    extra_names = list(EXTRA_INPUTS)
    script_inputs = list(gt.scripts.inputs) if gt.scripts is not None else []
    inputs = [gt.extras["id_task"], *[gt.fields[n] for n in field_names], *[gt.extras[n] for n in extra_names[1:]],
              *script_inputs]
    res = gt.results
    id_box = gt.extras["id_task"]
    outputs = [res.gallery, res.infotext_html, res.infotext, res.log_html, res.state, res.selected, id_box]
    n_fields = len(field_names)

    def generate(id_task, *args):
        values = dict(zip(field_names, args[:n_fields]))
        values.update(zip(extra_names[1:], args[n_fields:n_fields + len(extra_names) - 1]))
        script_values = list(args[n_fields + len(extra_names) - 1:])
        keep = gr.update()
        try:
            request = build_request(gt.tabname, values)
            if gt.scripts is not None:
                for key, value in gt.scripts.request_fields(script_values).items():
                    setattr(request, key, value)
        except (RequestError, ValueError, TypeError) as exc:
            yield keep, keep, keep, log_html(error=ui_run.error_message(exc)), keep, keep, id_task
            return
        request.id_task = id_task or f"task(ui-{os.urandom(6).hex()})"
        work = None
        if gt.is_img2img and values.get("mode") == "batch":
            spec = img2img_modes.batch_spec(values)
            work = lambda: img2img_batch.run_batch(host.generate, host.engine.state, request, spec)  # noqa: E731
        for update in ui_run.run_generation(host, request, tasks=tasks, work=work):
            if not update.done:
                yield (update.images, infotext_html(update.infotexts[0]), update.infotexts[0],
                       log_html(seconds=update.seconds), keep, keep, keep)
                continue
            if update.error:
                yield keep, keep, keep, log_html(error=update.error, seconds=update.seconds), keep, keep, request.id_task
                return
            processed = update.processed
            shown = ui_run.gallery_items(host.engine, processed)
            state = [{"infotext": t, "seed": s, "subseed": ss} for _, t, s, ss in shown]
            first = processed.infotexts[0] if processed.infotexts else ""
            yield ([image for image, *_ in shown], infotext_html(first), first,
                   log_html(update.warnings, seconds=update.seconds, interrupted=processed.interrupted), state, 0,
                   request.id_task)

    event = gt.generate.click(generate, inputs=inputs, outputs=outputs,
                              js=f"(...args) => sdUi.submit('{gt.tabname}', args)", show_progress="hidden",
                              concurrency_limit=None, api_visibility="private")
    # The bar goes when the run's last result is in the page, not at the next progress poll.
    event.then(None, inputs=[id_box], js=f"(id) => sdUi.finishTask('{gt.tabname}', id)", queue=False)
    gt.interrupt.click(lambda: host.engine.state.interrupt(), queue=False, api_visibility="private")
    gt.skip.click(lambda: host.engine.state.skip(), queue=False, api_visibility="private")


def _wire_prompt_tools(engine: Engine, gt: GenerationTab, top: dict[str, Any]) -> None:
    top["clear"].click(None, outputs=[gt.prompt, gt.negative_prompt], js="() => ['', '']", queue=False)

    def apply_styles(prompt, negative, styles):
        styles = list(styles or [])
        return (engine.styles.apply_styles_to_prompt(prompt or "", styles),
                engine.styles.apply_negative_styles_to_prompt(negative or "", styles), [])

    top["style_apply"].click(apply_styles, inputs=[gt.prompt, gt.negative_prompt, gt.styles],
                             outputs=[gt.prompt, gt.negative_prompt, gt.styles], queue=False, api_visibility="private")


def _wire_results(engine: Engine, gt: GenerationTab, seed_buttons: dict[str, gr.Button]) -> None:
    res = gt.results

    def select(state, evt: gr.SelectData):
        index = int(evt.index or 0)
        text = state[index]["infotext"] if state and index < len(state) else ""
        return index, infotext_html(text), text

    res.gallery.select(select, inputs=[res.state], outputs=[res.selected, res.infotext_html, res.infotext],
                       queue=False, show_progress="hidden", api_visibility="private")

    def reuse(key):
        def fn(state, index):
            if not state:
                return gr.update()
            return int(state[min(int(index or 0), len(state) - 1)][key])
        return fn

    seed_buttons["reuse_seed"].click(reuse("seed"), inputs=[res.state, res.selected], outputs=gt.fields["seed"],
                                     queue=False, api_visibility="private")
    seed_buttons["reuse_subseed"].click(reuse("subseed"), inputs=[res.state, res.selected],
                                        outputs=gt.fields["subseed"], queue=False, api_visibility="private")
    allowed = not (getattr(engine.args, "hide_ui_dir_config", False) or getattr(engine.args, "listen", False)
                   or getattr(engine.args, "share", False))
    res.open_folder.click(lambda: log_html([open_folder(output_folder(engine, gt.tabname), allowed=allowed)]),
                          outputs=res.log_html, queue=False, api_visibility="private")

    def save(make_zip):
        def fn(gallery, state, index):
            picked = save_images.chosen(len(gallery or []), index, bool(engine.options.get("save_selected_only")))
            images = [selected_image(gallery, i) for i in picked]
            texts = [state[i]["infotext"] if state and i < len(state) else "" for i in picked]
            seeds = [state[i]["seed"] if state and i < len(state) else None for i in picked]
            try:
                files, message = save_images.save_images(engine, images, texts, seeds, make_zip=make_zip)
            except OSError as exc:
                return gr.update(), log_html(error=f"Not saved: {exc}")
            return gr.update(value=download_copies(files) or None, visible=bool(files)), log_html([message])
        return fn

    for button, make_zip in ((res.save, False), (res.save_zip, True)):
        button.click(save(make_zip), inputs=[res.gallery, res.state, res.selected], outputs=[res.download, res.log_html],
                     api_visibility="private")


def download_copies(files: list[Path]) -> list[str]:
    """Copies in a temporary folder: Gradio serves only files under the temp dir, the working dir or
    --gradio-allowed-path, and the Save folder may be anywhere (--data-dir)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="sd-save-"))
    return [str(shutil.copy2(f, folder / f.name)) for f in files]


def selected_image(gallery_value: Any, index: Any) -> Image.Image | None:
    """The PIL image at `index` of a Gallery's value (a list of (image or path, caption))."""
    if not gallery_value:
        return None
    index = min(max(int(index or 0), 0), len(gallery_value) - 1)
    item = gallery_value[index]
    image = item[0] if isinstance(item, (tuple, list)) else item
    if isinstance(image, dict):
        image = image.get("path") or image.get("image")
    return open_image(image)
