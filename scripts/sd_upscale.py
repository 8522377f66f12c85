"""A1111's built-in "SD upscale" (img2img): upscale the init image with an upscaler, then redraw it tile by tile
with img2img at the request's width x height, tiles overlapping by ``overlap`` pixels and blended back together.

Arguments (A1111's order): ``info`` (a text the page shows), ``overlap``, ``upscaler_index`` (an index into the
upscaler list or an upscaler's name, as A1111's API tests send it), ``scale_factor``."""
from __future__ import annotations

import copy
import math
from typing import Any

from PIL import Image

from modules import processing, scripts
from modules.core.request import RequestError
from modules.scripting.a1111_processing import Processed, fix_seed

TITLE = "SD upscale"


def tile_positions(size: int, tile: int, overlap: int) -> list[int]:
    """Left (or top) edges of tiles of ``tile`` px covering ``size`` px, each overlapping the next by at least
    ``overlap`` px, spread evenly (the last one ends at the edge)."""
    if size <= tile:
        return [0]
    step = max(1, tile - overlap)
    count = math.ceil((size - overlap) / step)
    count = max(count, 2)
    spacing = (size - tile) / (count - 1)
    return [int(round(i * spacing)) for i in range(count)]


def split(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> list[tuple[int, int, Image.Image]]:
    out = []
    for y in tile_positions(image.height, tile_h, overlap):
        for x in tile_positions(image.width, tile_w, overlap):
            out.append((x, y, image.crop((x, y, x + tile_w, y + tile_h))))
    return out


def _ramp(width: int, height: int, horizontal: bool, length: int) -> Image.Image:
    """A mask that rises from 0 to 255 over the first ``length`` px (left or top edge), then stays 255."""
    mask = Image.new("L", (width, height), 255)
    if length <= 0:
        return mask
    for i in range(min(length, width if horizontal else height)):
        value = int(255 * (i + 1) / (length + 1))
        box = (i, 0, i + 1, height) if horizontal else (0, i, width, i + 1)
        mask.paste(value, box)
    return mask


def combine(size: tuple[int, int], tiles: list[tuple[int, int, Image.Image]]) -> Image.Image:
    """Paste tiles in reading order; where a tile overlaps what is already there it fades in over the overlap."""
    out = Image.new("RGB", size)
    xs = sorted({x for x, _, _ in tiles})
    ys = sorted({y for _, y, _ in tiles})
    for x, y, tile in tiles:
        tile = tile.convert("RGB")
        mask = Image.new("L", tile.size, 255)
        col, row = xs.index(x), ys.index(y)
        if col > 0:
            left_overlap = xs[col - 1] + tile.width - x
            mask = _min(mask, _ramp(tile.width, tile.height, True, left_overlap))
        if row > 0:
            top_overlap = ys[row - 1] + tile.height - y
            mask = _min(mask, _ramp(tile.width, tile.height, False, top_overlap))
        out.paste(tile, (x, y), mask)
    return out


def _min(a: Image.Image, b: Image.Image) -> Image.Image:
    from PIL import ImageChops

    return ImageChops.darker(a, b)


def _upscaler_name(engine: Any, upscaler: Any) -> str | None:
    names = engine.upscalers.names()
    if isinstance(upscaler, bool):
        upscaler = int(upscaler)
    if isinstance(upscaler, int) or (isinstance(upscaler, str) and upscaler.isdigit()):
        index = int(upscaler)
        if not 0 <= index < len(names):
            raise RequestError("script_args", f"SD upscale: upscaler index {index} is out of range 0..{len(names) - 1}")
        return names[index]
    if upscaler in (None, "", "None"):
        return None
    match = next((n for n in names if n.lower() == str(upscaler).lower()), None)
    if match is None:
        raise RequestError("script_args", f"SD upscale: unknown upscaler {upscaler!r}; choose one of {', '.join(names)}")
    return match


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        names = self.engine.upscalers.names() if self.engine is not None else ["Lanczos"]
        info = gr.HTML("<p style=\"margin-bottom:0.75em\">Will upscale the image by the selected scale factor; "
                       "use width and height sliders to set tile size</p>")
        overlap = gr.Slider(minimum=0, maximum=256, step=16, label="Tile overlap", value=64,
                            elem_id=self.elem_id("overlap"))
        scale_factor = gr.Slider(minimum=1.0, maximum=4.0, step=0.05, label="Scale Factor", value=2.0,
                                 elem_id=self.elem_id("scale_factor"))
        upscaler_index = gr.Radio(label="Upscaler", choices=names, value=names[0] if names else None, type="index",
                                  elem_id=self.elem_id("upscaler_index"))
        return [info, overlap, upscaler_index, scale_factor]

    def run(self, p: Any, _info: Any = "", overlap: Any = 64, upscaler_index: Any = 0, scale_factor: Any = 2.0,
            *_: Any) -> Processed:
        if not p.init_images:
            raise RequestError("init_images", "SD upscale needs an init image")
        engine = p.engine
        overlap, scale_factor = int(overlap), float(scale_factor)
        if not 1.0 <= scale_factor <= 8.0:
            raise RequestError("script_args", f"SD upscale: scale factor must be between 1 and 8, got {scale_factor}")
        if overlap < 0 or overlap >= min(p.width, p.height):
            raise RequestError("script_args", f"SD upscale: overlap must be between 0 and the tile size, got {overlap}")
        name = _upscaler_name(engine, upscaler_index)
        fix_seed(p)
        source = p.init_images[0].convert("RGB")
        target = (int(source.width * scale_factor), int(source.height * scale_factor))
        upscaled = engine.upscalers.upscale_to(source, name, *target)
        tiles = split(upscaled, p.width, p.height, overlap)
        state = engine.state
        state.job_count = len(tiles) * p.n_iter
        results, infotexts, seeds = [], [], []
        for n in range(p.n_iter):
            seed = p.seed + n
            done = []
            for x, y, tile in tiles:
                if state.interrupted:
                    break
                cell = copy.copy(p)
                cell.init_images = [tile]
                cell.n_iter, cell.batch_size, cell.seed = 1, 1, seed
                cell.do_not_save_grid = True
                cell.do_not_save_samples = True
                part = processing.process_images(cell)
                done.append((x, y, part.images[0]))
                if not infotexts or len(infotexts) < n + 1:
                    infotexts.append(part.infotexts[0])
            if len(done) == len(tiles):
                results.append(combine(upscaled.size, done))
                seeds.append(seed)
        if not p.do_not_save_samples:
            from modules.scripting.a1111_images import save_image

            outdir = p.outpath_samples or str(engine.paths.outputs_dir / "img2img-images")
            for image, text, seed in zip(results, infotexts, seeds):
                save_image(image, outdir, "", seed, p.prompt, engine.options.get("samples_format") or "png",
                           info=text, p=p)
        return Processed(p, results, seeds[0] if seeds else p.seed, infotexts[0] if infotexts else "",
                         all_seeds=seeds, infotexts=infotexts[:len(results)])
