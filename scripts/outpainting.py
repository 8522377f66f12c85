"""A1111's built-in outpainting scripts (img2img): "Poor man's outpainting" and "Outpainting mk2" grow the picture
by ``pixels`` in the chosen directions and inpaint the new area.

Poor man's is one inpainting pass over the grown canvas (A1111's redraws it tile by tile at the request's size).
Outpainting mk2 is A1111's: one pass per direction, in the order left, right, up, down, each on the previous
pass's result; a pass grows the picture on one side, fills the new strip with noise, and inpaints a window of
at most the request's width (left/right) or height (up/down) at that side, the rest of the picture kept as it
is. Canvases and windows are multiples of 8. Arguments are A1111's:

* Poor man's: ``pixels``, ``mask_blur``, ``inpainting_fill`` (index or name: fill, original, latent noise,
  latent nothing), ``direction`` (a list of left/right/up/down).
* mk2: ``info``, ``pixels``, ``mask_blur``, ``direction``, ``noise_q``, ``color_variation``."""
from __future__ import annotations

import copy
from typing import Any

from modules import processing, scripts
from modules.core import outpaint
from modules.core.request import RequestError
from modules.scripting.a1111_processing import Processed, fix_seed

FILLS = ("fill", "original", "latent noise", "latent nothing")


def _directions(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    items = [str(d).strip().lower() for d in items]
    bad = [d for d in items if d not in outpaint.DIRECTIONS]
    if bad or not items:
        raise RequestError("script_args", f"outpainting direction must be some of {', '.join(outpaint.DIRECTIONS)}, "
                                          f"got {value!r}")
    return items


def _fill_index(value: Any) -> int:
    if isinstance(value, str) and not value.isdigit():
        if value.lower() not in FILLS:
            raise RequestError("script_args", f"masked content must be one of {', '.join(FILLS)}, got {value!r}")
        return FILLS.index(value.lower())
    index = int(value)
    if not 0 <= index < len(FILLS):
        raise RequestError("script_args", f"masked content index must be 0..3, got {index}")
    return index


def outpaint_run(p: Any, pixels: Any, mask_blur: Any, directions: Any, fill: str, inpainting_fill: int,
                 noise_q: float = 1.0, color_variation: float = 0.05) -> Processed:
    if not p.init_images:
        raise RequestError("init_images", "outpainting needs an init image")
    pixels, mask_blur = int(pixels), int(mask_blur)
    if not 8 <= pixels <= 256:
        raise RequestError("script_args", f"outpainting pixels must be between 8 and 256, got {pixels}")
    fix_seed(p)
    grown = outpaint.expand(p.init_images[0], pixels, _directions(directions), mask_blur, fill=fill, seed=int(p.seed),
                            noise_q=float(noise_q), color_variation=float(color_variation))
    cell = copy.copy(p)
    cell.init_images = [grown.image]
    cell.mask = grown.mask
    cell.width, cell.height = grown.image.size
    cell.mask_blur = 0  # already feathered
    cell.inpainting_fill = inpainting_fill
    cell.inpaint_full_res = False
    cell.resize_mode = 0
    return processing.process_images(cell)


def _mk2_pass(p: Any, images: list[Any], seed: int, pixels: int, mask_blur: int, direction: str, noise_q: float,
              color_variation: float, window_w: int, window_h: int) -> tuple[list[Any], Processed]:
    """Grow every image of ``images`` on one side and inpaint the window at that side (one process_images)."""
    horizontal = direction in ("left", "right")
    grown = [outpaint.expand(img, pixels, [direction], mask_blur, fill="noise", seed=seed + i, noise_q=noise_q,
                             color_variation=color_variation) for i, img in enumerate(images)]
    canvas_w, canvas_h = grown[0].image.size
    w = min(window_w, canvas_w) if horizontal else canvas_w
    h = min(window_h, canvas_h) if not horizontal else canvas_h
    x0 = canvas_w - w if direction == "right" else 0
    y0 = canvas_h - h if direction == "down" else 0
    box = (x0, y0, x0 + w, y0 + h)
    cell = copy.copy(p)
    cell.init_images = [g.image.crop(box) for g in grown]
    cell.mask = grown[0].mask.crop(box)
    cell.width, cell.height = w, h
    cell.n_iter, cell.batch_size, cell.seed = 1, len(images), seed
    cell.mask_blur = 0  # already feathered
    cell.inpainting_fill = FILLS.index("original")
    cell.inpaint_full_res = False
    cell.resize_mode = 0
    processed = processing.process_images(cell)
    out = []
    for g, painted in zip(grown, processed.images):
        picture = g.image.copy()
        picture.paste(painted.convert("RGB"), box[:2])
        out.append(picture)
    return out, processed


def mk2_run(p: Any, pixels: Any, mask_blur: Any, directions: Any, noise_q: Any, color_variation: Any) -> Processed:
    if not p.init_images:
        raise RequestError("init_images", "outpainting needs an init image")
    pixels, mask_blur = int(pixels), int(mask_blur)
    if not 8 <= pixels <= 256:
        raise RequestError("script_args", f"outpainting pixels must be between 8 and 256, got {pixels}")
    chosen = [d for d in outpaint.DIRECTIONS if d in _directions(directions)]
    fix_seed(p)
    p.engine.state.job_count = p.n_iter * len(chosen)
    images, infotexts, seeds = [], [], []
    for n in range(p.n_iter):
        seed = int(p.seed) + n * p.batch_size
        batch = [p.init_images[0]] * p.batch_size
        processed = None
        for direction in chosen:
            batch, processed = _mk2_pass(p, batch, seed, pixels, mask_blur, direction, float(noise_q),
                                         float(color_variation), int(p.width), int(p.height))
        images += batch
        infotexts += list(processed.infotexts[:len(batch)])
        seeds += [seed + i for i in range(len(batch))]
    return Processed(p, images, seeds[0], infotexts[0], all_seeds=seeds, infotexts=infotexts)


class PoorMansOutpainting(scripts.Script):
    def title(self) -> str:
        return "Poor man's outpainting"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        pixels = gr.Slider(label="Pixels to expand", minimum=8, maximum=256, step=8, value=128,
                           elem_id=self.elem_id("pixels"))
        mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=4, elem_id=self.elem_id("mask_blur"))
        fill = gr.Radio(label="Masked content", choices=list(FILLS), value="fill", type="index",
                        elem_id=self.elem_id("inpainting_fill"))
        direction = gr.CheckboxGroup(label="Outpainting direction", choices=list(outpaint.DIRECTIONS),
                                     value=list(outpaint.DIRECTIONS), elem_id=self.elem_id("direction"))
        return [pixels, mask_blur, fill, direction]

    def run(self, p: Any, pixels: Any = 128, mask_blur: Any = 4, inpainting_fill: Any = 0,
            direction: Any = ("left", "right", "up", "down"), *_: Any) -> Processed:
        return outpaint_run(p, pixels, mask_blur, direction, "edge", _fill_index(inpainting_fill))


class OutpaintingMk2(scripts.Script):
    def title(self) -> str:
        return "Outpainting mk2"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        info = gr.HTML("<p style=\"margin-bottom:0.75em\">Recommended settings: Sampling Steps: 80-100, "
                       "Sampler: Euler a, Denoising strength: 0.8</p>")
        pixels = gr.Slider(label="Pixels to expand", minimum=8, maximum=256, step=8, value=128,
                           elem_id=self.elem_id("pixels"))
        mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=8, elem_id=self.elem_id("mask_blur"))
        direction = gr.CheckboxGroup(label="Outpainting direction", choices=list(outpaint.DIRECTIONS),
                                     value=list(outpaint.DIRECTIONS), elem_id=self.elem_id("direction"))
        noise_q = gr.Slider(label="Fall-off exponent (lower=higher detail)", minimum=0.0, maximum=4.0, step=0.01,
                            value=1.0, elem_id=self.elem_id("noise_q"))
        color_variation = gr.Slider(label="Color variation", minimum=0.0, maximum=1.0, step=0.01, value=0.05,
                                    elem_id=self.elem_id("color_variation"))
        return [info, pixels, mask_blur, direction, noise_q, color_variation]

    def run(self, p: Any, _info: Any = "", pixels: Any = 128, mask_blur: Any = 8,
            direction: Any = ("left", "right", "up", "down"), noise_q: Any = 1.0, color_variation: Any = 0.05,
            *_: Any) -> Processed:
        return mk2_run(p, pixels, mask_blur, direction, noise_q, color_variation)
