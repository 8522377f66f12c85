"""img2img's Sketch, Inpaint sketch and Batch sub-tabs (A1111's ids), and what their values mean for a request.

- **Sketch**: draw in colour on the picture; the drawing and the picture together are the init image.
- **Inpaint sketch**: the same, and what was drawn is also the mask (A1111: the pixels that differ from the
  picture), so the drawing's colours guide what is painted there.
- **Batch**: folders; the run itself is :mod:`modules.engine.img2img_batch`.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
from PIL import Image, ImageEnhance, ImageFilter

from modules.engine.img2img_batch import PNG_INFO_PROPS, BatchSpec
from modules.page.paste import open_image

SKETCH_COLORS = ["#ffffff", "#000000", "#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff"]
BATCH_NAMES = ("batch_input_dir", "batch_output_dir", "batch_mask_dir", "batch_use_png_info", "batch_png_info_dir",
               "batch_png_info_props")


def _sketch_editor(label: str, elem_id: str) -> gr.ImageEditor:
    return gr.ImageEditor(label=label, type="pil", image_mode="RGBA", sources=["upload", "clipboard"],
                          brush=gr.Brush(colors=SKETCH_COLORS, default_color=SKETCH_COLORS[0], default_size=12,
                                         color_mode="defaults"),
                          eraser=gr.Eraser(default_size=12), layers=False, transforms=(), elem_id=elem_id, height=420,
                          format="png")  # the default webp would be lossy


def create_sketch(extras: dict[str, Any]) -> None:
    extras["sketch_editor"] = _sketch_editor("Image for img2img", "img2img_sketch")


def create_inpaint_sketch(extras: dict[str, Any]) -> None:
    extras["inpaint_sketch_editor"] = _sketch_editor("Color sketch inpainting", "inpaint_sketch")


def create_batch(extras: dict[str, Any]) -> None:
    gr.HTML("<p>Process images in a folder on the same machine where the server is running.<br>Use an empty "
            "output folder to save pictures normally instead of writing to the output folder.<br>Add an inpaint "
            "batch mask folder to enable inpaint batch processing.</p>", elem_id="img2img_batch_help")
    extras["batch_input_dir"] = gr.Textbox(label="Input directory", elem_id="img2img_batch_input_dir")
    extras["batch_output_dir"] = gr.Textbox(label="Output directory", elem_id="img2img_batch_output_dir")
    extras["batch_mask_dir"] = gr.Textbox(label="Inpaint batch mask directory (required for inpaint batch processing only)",
                                          elem_id="img2img_batch_inpaint_mask_dir")
    with gr.Accordion("PNG info", open=False):
        extras["batch_use_png_info"] = gr.Checkbox(label="Append png info to prompts",
                                                   elem_id="img2img_batch_use_png_info")
        extras["batch_png_info_dir"] = gr.Textbox(label="PNG info directory (optional: else the input pictures' own)",
                                                  elem_id="img2img_batch_png_info_dir")
        extras["batch_png_info_props"] = gr.CheckboxGroup(list(PNG_INFO_PROPS), label="Parameters to take from png info",
                                                          value=["Prompt"], elem_id="img2img_batch_png_info_props")


def _editor_parts(value: Any) -> tuple[Image.Image | None, Image.Image | None, Image.Image | None]:
    """(background RGB, composite RGB, drawn-area mask L or None) of an ImageEditor value."""
    if not isinstance(value, dict) or value.get("background") is None:
        return None, None, None
    background = open_image(value["background"]).convert("RGBA")
    composite = background.copy()
    mask = Image.new("L", background.size, 0)
    for layer in value.get("layers") or []:
        layer = open_image(layer)
        if layer is None:
            continue
        layer = layer.convert("RGBA")
        if layer.size != background.size:
            layer = layer.resize(background.size, Image.NEAREST)
        composite.alpha_composite(layer)
        mask.paste(255, (0, 0), layer.getchannel("A").point(lambda a: 255 if a > 0 else 0))
    return background.convert("RGB"), composite.convert("RGB"), mask if mask.getbbox() else None


def sketch_init(value: Any) -> Image.Image | None:
    """Sketch: the picture with the drawing on it."""
    return _editor_parts(value)[1]


def inpaint_sketch_parts(value: Any, *, mask_alpha: float = 0.0,
                         mask_blur: float = 0.0) -> tuple[Image.Image | None, Image.Image | None]:
    """Inpaint sketch: (init image, mask), as A1111 makes them. The mask is the drawn area, darkened by "Mask
    transparency" (``mask_alpha`` %, so 60 leaves 40 % of white); the init image is the drawing, blurred by the
    mask blur, laid over the picture through that mask blurred alike, so a transparent mask lets the picture show
    through the colours. None for the mask when nothing was drawn."""
    background, composite, mask = _editor_parts(value)
    if mask is None:
        return composite, None
    mask = ImageEnhance.Brightness(mask).enhance(1 - float(mask_alpha) / 100)
    blur = ImageFilter.GaussianBlur(float(mask_blur))
    return Image.composite(composite.filter(blur), background, mask.filter(blur)), mask


def batch_spec(values: dict[str, Any]) -> BatchSpec:
    return BatchSpec(input_dir=str(values.get("batch_input_dir") or ""),
                     output_dir=str(values.get("batch_output_dir") or ""),
                     mask_dir=str(values.get("batch_mask_dir") or ""),
                     use_png_info=bool(values.get("batch_use_png_info")),
                     png_info_dir=str(values.get("batch_png_info_dir") or ""),
                     png_info_props=list(values.get("batch_png_info_props") or []))
