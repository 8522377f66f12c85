"""Prompt matrix (spec §12.4): ``a|b|c`` makes every combination of the ``|`` parts after the first, one image each.

Arguments (A1111's order): put_at_start, different_seeds, prompt_type ("positive"/"negative"),
variations_delimiter ("comma"/"space"), margin_size. Combination ``i`` uses part ``n + 1`` when bit ``n`` of
``i`` is set, so the grid's columns are the first half of the parts and its rows the second half; the
labels show the parts a cell uses in black and the others struck through.
"""
from __future__ import annotations

import math
from typing import Any

from modules import processing, rng, scripts
from modules.core import grid_drawing
from modules.core.request import Processed, RequestError

TITLE = "Prompt matrix"


def matrix_prompts(prompt: str, *, put_at_start: bool = False, delimiter: str = "comma") -> list[str]:
    """Every combination, in bit order: ``"a|b|c"`` → ``["a", "a, b", "a, c", "a, b, c"]``."""
    parts = [part.strip() for part in prompt.split("|")]
    base, variants = parts[0], parts[1:]
    joiner = ", " if delimiter == "comma" else " "
    out = []
    for combo in range(1 << len(variants)):
        chosen = [text for n, text in enumerate(variants) if combo & (1 << n)]
        pieces = chosen + [base] if put_at_start else [base] + chosen
        out.append(joiner.join(piece for piece in pieces if piece))
    return out


def matrix_labels(prompt: str) -> tuple[list[list[grid_drawing.GridAnnotation]], list[list[grid_drawing.GridAnnotation]]]:
    """(column labels, row labels): the first ceil(n/2) variable parts across, the rest down."""
    variants = [part.strip() for part in prompt.split("|")][1:]
    boundary = math.ceil(len(variants) / 2)
    across, down = variants[:boundary], variants[boundary:]

    def labels(parts: list[str]) -> list[list[grid_drawing.GridAnnotation]]:
        return [[grid_drawing.GridAnnotation(text, bool(pos & (1 << i))) for i, text in enumerate(parts)]
                for pos in range(1 << len(parts))]

    return labels(across), labels(down)


def draw_matrix(images: list, prompt: str, margin: int = 0):
    """The labelled grid of a matrix's images (in combination order)."""
    hor, ver = matrix_labels(prompt)
    rows = len(ver)
    cell_w, cell_h = map(max, zip(*(img.size for img in images)))
    grid = grid_drawing.image_grid_with_margin(images, rows=rows, margin=margin, cell_size=(cell_w, cell_h))
    return grid_drawing.draw_grid_annotations(grid, cell_w, cell_h, hor, ver, margin)


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return True

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        with gr.Row():
            put_at_start = gr.Checkbox(label="Put variable parts at start of prompt", value=False,
                                       elem_id=self.elem_id("put_at_start"))
            different_seeds = gr.Checkbox(label="Use different seed for each picture", value=False,
                                          elem_id=self.elem_id("different_seeds"))
        with gr.Row():
            prompt_type = gr.Radio(["positive", "negative"], label="Select prompt", value="positive",
                                   elem_id=self.elem_id("prompt_type"))
            delimiter = gr.Radio(["comma", "space"], label="Select joining char", value="comma",
                                 elem_id=self.elem_id("variations_delimiter"))
        margin = gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2, elem_id=self.elem_id("margin_size"))
        return [put_at_start, different_seeds, prompt_type, delimiter, margin]

    def run(self, p: Any, put_at_start: bool = False, different_seeds: bool = False, prompt_type: str = "positive",
            variations_delimiter: str = "comma", margin_size: int = 0, *_: Any) -> Processed:
        if prompt_type not in ("positive", "negative"):
            raise RequestError("script_args", f"prompt_type must be 'positive' or 'negative', got {prompt_type!r}")
        source = p.prompt if prompt_type == "positive" else p.negative_prompt
        source = source[0] if isinstance(source, list) else source
        prompts = matrix_prompts(source, put_at_start=bool(put_at_start), delimiter=variations_delimiter)
        p.n_iter = math.ceil(len(prompts) / p.batch_size)
        keep_grid = not p.do_not_save_grid
        p.do_not_save_grid = True  # process_images' plain grid: the matrix grid replaces it
        if prompt_type == "positive":
            p.prompt = prompts
        else:
            p.negative_prompt = prompts
        seed = rng.fix_seed(p.seed if not isinstance(p.seed, list) else p.seed[0])
        p.seed = [seed + (i if different_seeds else 0) for i in range(len(prompts))]
        p.prompt_for_display = source
        p.engine.state.job_count = p.n_iter
        processed = processing.process_images(p)
        images = processed.images
        if len(images) < len(prompts):  # interrupted: no matrix
            return processed
        grid = draw_matrix(images[:len(prompts)], source, int(margin_size or 0))
        text = processed.infotexts[0] if processed.infotexts else ""
        p.do_not_save_grid = not keep_grid
        path = processing.save_grid(p, grid, text)
        out = processing.combined_processed(p, [processed], [grid], [text])
        if path:
            out.saved_paths.append(path)
        return out
