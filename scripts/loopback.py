"""A1111's built-in "Loopback" (img2img): run img2img ``loops`` times, each time on the previous result, with the
denoising strength moving from the request's value to ``final_denoising_strength`` along ``denoising_curve``.

Arguments (A1111's order): ``loops``, ``final_denoising_strength``, ``denoising_curve`` ("Aggressive",
"Linear", "Lazy"), ``append_interrogation`` (only "None": this app has no interrogator)."""
from __future__ import annotations

import copy
import math
from typing import Any

from modules import processing, scripts
from modules.core.request import RequestError
from modules.scripting.a1111_processing import Processed, fix_seed

TITLE = "Loopback"
CURVES = ("Aggressive", "Linear", "Lazy")


def strength_at(i: int, loops: int, start: float, final: float, curve: str) -> float:
    """The denoising strength of loop ``i`` (0-based): ``start`` at the first, ``final`` at the last."""
    if loops <= 1 or i == 0:
        return start
    progress = i / (loops - 1)
    if curve == "Aggressive":
        progress = math.sin(progress * math.pi * 0.5)
    elif curve == "Lazy":
        progress = 1 - math.cos(progress * math.pi * 0.5)
    return start + (final - start) * progress


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        loops = gr.Slider(minimum=1, maximum=32, step=1, label="Loops", value=4, elem_id=self.elem_id("loops"))
        final = gr.Slider(minimum=0, maximum=1, step=0.01, label="Final denoising strength", value=0.5,
                          elem_id=self.elem_id("final_denoising_strength"))
        curve = gr.Dropdown(label="Denoising strength curve", choices=list(CURVES), value="Linear")
        interrogation = gr.Dropdown(label="Append interrogated prompt at each iteration", choices=["None"],
                                    value="None")
        return [loops, final, curve, interrogation]

    def run(self, p: Any, loops: Any = 4, final_denoising_strength: Any = 0.5, denoising_curve: str = "Linear",
            append_interrogation: str = "None", *_: Any) -> Processed:
        if not p.init_images:
            raise RequestError("init_images", "Loopback needs an init image")
        loops = int(loops)
        if not 1 <= loops <= 32:
            raise RequestError("script_args", f"Loopback: loops must be between 1 and 32, got {loops}")
        if denoising_curve not in CURVES:
            raise RequestError("script_args", f"Loopback: curve must be one of {', '.join(CURVES)}")
        final = float(final_denoising_strength)
        fix_seed(p)
        state = p.engine.state
        state.job_count = loops * p.n_iter
        start = float(p.denoising_strength)
        images, infotexts, seeds = [], [], []
        for n in range(p.n_iter):
            current = p.init_images
            seed = p.seed + n * loops
            for i in range(loops):
                if state.interrupted:
                    break
                cell = copy.copy(p)
                cell.init_images = current
                cell.n_iter, cell.batch_size, cell.seed = 1, 1, seed + i
                cell.denoising_strength = strength_at(i, loops, start, final, denoising_curve)
                part = processing.process_images(cell)
                current = [part.images[0]]
                images.append(part.images[0])
                infotexts.append(part.infotexts[0])
                seeds.append(seed + i)
        return Processed(p, images, seeds[0] if seeds else p.seed, infotexts[0] if infotexts else "",
                         all_seeds=seeds, infotexts=infotexts)
