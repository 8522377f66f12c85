"""A1111's built-in "Soft Inpainting" (img2img, always on, in the inpaint options): the mask's soft edge blends the
original and the generated latent at every step, and the final composite keeps the original pixels where the result
hardly differs from them. The math is in ``modules/core/soft_inpainting.py``.

Arguments (A1111's order, for the API's ``alwayson_scripts: {"soft inpainting": {"args": [...]}}``): enabled,
schedule bias, preservation strength, transition contrast boost, mask influence, difference threshold, difference
contrast. Infotext: ``Soft inpainting enabled: True`` and ``Soft inpainting <parameter>: value``.
"""
from __future__ import annotations

import math
from typing import Any

from modules import scripts
from modules.core import img2img_ops
from modules.core import soft_inpainting as soft
from modules.core.request import RequestError

TITLE = "Soft Inpainting"
# (element id as A1111's, minimum, maximum, step) per parameter, in argument order
SLIDERS = (("mask_blend_power", 0, 8, 0.1), ("mask_blend_scale", 0, 8, 0.05), ("inpaint_detail_preservation", 1, 32, 0.5),
           ("composite_mask_influence", 0, 1, 0.05), ("composite_difference_threshold", 0, 8, 0.25),
           ("composite_difference_contrast", 0, 8, 0.25))
HELP = ("Shifts when preservation of original content occurs during denoising.",
        "How strongly partially masked content should be preserved.",
        "Amplifies the contrast that may be lost in partially masked regions.",
        "How strongly the original mask should bias the difference threshold.",
        "How much an image region can change before the original pixels are not blended in anymore.",
        "How sharp the transition should be between blended and not blended.")


def settings_of(values: tuple) -> soft.SoftInpaintingSettings:
    """The six numbers as settings; a value that is not a finite number within its slider's range is refused."""
    numbers = []
    for (elem, low, high, _), label, value in zip(SLIDERS, soft.UI_LABELS, values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise RequestError("alwayson_scripts", f"Soft inpainting: {label} must be a number, got {value!r}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise RequestError("alwayson_scripts", f"Soft inpainting: {label} must be between {low} and {high}, "
                                                   f"got {value!r}")
        numbers.append(number)
    return soft.SoftInpaintingSettings(*numbers)


def _active(p: Any, enabled: Any) -> bool:
    return bool(enabled) and getattr(p, "mask", None) is not None and bool(getattr(p, "init_images", None))


class Script(scripts.Script):
    section = "inpaint"

    def __init__(self) -> None:
        self.overlays: list[tuple[Any, Any]] | None = None

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return scripts.AlwaysVisible if is_img2img else False

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        enabled = gr.Checkbox(label="Soft inpainting", value=False, elem_id="soft_inpainting_enabled")
        with gr.Group(visible=False, elem_id="soft_inpainting_settings") as group:
            gr.Markdown("Soft inpainting allows you to **seamlessly blend original content with inpainted content** "
                        "according to the mask opacity. **High _Mask blur_** values are recommended!")
            defaults = soft.SoftInpaintingSettings()
            sliders = []
            for i, ((elem, low, high, step), label, info) in enumerate(zip(SLIDERS, soft.UI_LABELS, HELP)):
                if i == 3:
                    gr.Markdown("### Pixel Composite Settings")
                sliders.append(gr.Slider(low, high, value=list(vars(defaults).values())[i], step=step, label=label,
                                         info=info, elem_id=elem))
        enabled.change(lambda on: gr.update(visible=bool(on)), inputs=enabled, outputs=group, queue=False,
                       show_progress="hidden")
        self.infotext_fields = [(enabled, soft.ENABLED_KEY), *zip(sliders, soft.INFOTEXT_KEYS)]
        self.paste_field_names = [key for _, key in self.infotext_fields]
        return [enabled, *sliders]

    def process(self, p: Any, enabled: Any = False, *values: Any) -> None:
        self.overlays = None
        if not _active(p, enabled):
            return
        settings = settings_of(values or tuple(vars(soft.SoftInpaintingSettings()).values()))
        p.mask_round = False  # the latent mask keeps its blurred edge
        p.extra_generation_params.update(settings.infotext())

    def on_mask_blend(self, p: Any, mba: Any, enabled: Any = False, *values: Any) -> None:
        if not _active(p, enabled):
            return
        if mba.is_final_blend:  # the steps blended already; the composite does the rest
            mba.blended_latent = mba.current_latent
            return
        settings = settings_of(values or tuple(vars(soft.SoftInpaintingSettings()).values()))
        opacity = soft.step_opacity(settings, mba.nmask, mba.sigma[0])
        mba.blended_latent = soft.latent_blend(settings, mba.init_latent, mba.current_latent, opacity)

    def post_sample(self, p: Any, ps: Any, enabled: Any = False, *values: Any) -> None:
        self.overlays = None
        if not _active(p, enabled) or getattr(p, "nmask", None) is None:
            return
        settings = settings_of(values or tuple(vars(soft.SoftInpaintingSettings()).values()))
        background = p.engine.options.get("img2img_background_color") or "#ffffff"
        originals = []
        for i in range(ps.samples.shape[0]):
            image = img2img_ops.flatten(p.init_images[(p.iteration * p.batch_size + i) % len(p.init_images)],
                                        background)
            if p.paste_to is None and p.resize_mode != 3:
                image = img2img_ops.resize_image(p.resize_mode, image, p.width, p.height)
            originals.append(image)
        masks = soft.difference_masks(settings, p.nmask, p.init_latent, ps.samples, p.width, p.height)
        self.overlays = soft.overlays(masks, originals, p.paste_to)

    def postprocess_maskoverlay(self, p: Any, ppmo: Any, enabled: Any = False, *values: Any) -> None:
        if not _active(p, enabled) or self.overlays is None or ppmo.index >= len(self.overlays):
            return
        ppmo.mask_for_overlay, ppmo.overlay_image = self.overlays[ppmo.index]
