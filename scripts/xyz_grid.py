"""X/Y/Z plot (spec §12.4): one generation per combination of up to three axes' values, drawn as a labelled grid.

Arguments (A1111's order): x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type,
z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds,
vary_seeds_x, vary_seeds_y, vary_seeds_z, margin_size, csv_mode. An axis type is the axis label
("Steps", any case) or its index in this tab's list.

Value syntax: a comma-separated list (CSV: quote a value that holds a comma); for numbers also ranges:
``1-5`` (inclusive), ``1-5 (+2)`` (step), ``1-10 [5]`` (that many values, evenly spread), floats the same
(``0.5-1.5 (+0.25)``, ``0-1 [5]``). Prompt S/R: the first value is searched in the prompt and replaced by
each value in turn; Prompt order: every order of the listed prompt parts.

The value parsing (:func:`parse_values`), the axes (:func:`axis_options`) and the grid drawing
(:func:`draw_xyz_grid`) are plain functions; the script class only wires them to ``process_images``.
"""
from __future__ import annotations

import copy
import csv
import io
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PIL import Image

from modules import processing, rng, scripts
from modules.core import grid_drawing
from modules.core import samplers
from modules.core.request import Processed, RequestError

TITLE = "X/Y/Z plot"

# --- value syntax ---------------------------------------------------------------------------------

_INT = r"[+-]?\d+"
_FLOAT = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
RE_INT_RANGE = re.compile(rf"^\s*({_INT})\s*-\s*({_INT})\s*(?:\(\s*({_INT})\s*\)|\[\s*(\d+)\s*\])?\s*$")
RE_FLOAT_RANGE = re.compile(rf"^\s*({_FLOAT})\s*-\s*({_FLOAT})\s*(?:\(\s*({_FLOAT})\s*\)|\[\s*(\d+)\s*\])?\s*$")


def csv_list(text: str) -> list[str]:
    """Comma-separated values, CSV quoting allowed, each stripped; empty items dropped."""
    rows = csv.reader(io.StringIO(str(text or "")), skipinitialspace=True)
    return [item.strip() for row in rows for item in row if item.strip()]


def _linspace(start: float, end: float, count: int) -> list[float]:
    if count <= 1:
        return [start]
    return [start + (end - start) * i / (count - 1) for i in range(count)]


def _expand_int(item: str) -> list[int]:
    m = RE_INT_RANGE.match(item)
    if m is None:
        return [int(item)]
    start, end = int(m.group(1)), int(m.group(2))
    if m.group(4) is not None:  # [count]: evenly spread, truncated to int
        return [int(v) for v in _linspace(start, end, int(m.group(4)))]
    step = int(m.group(3)) if m.group(3) is not None else (1 if end >= start else -1)
    if step == 0:
        raise ValueError(f"{item!r}: the step must not be 0")
    return list(range(start, end + (1 if step > 0 else -1), step))


def _expand_float(item: str) -> list[float]:
    m = RE_FLOAT_RANGE.match(item)
    if m is None:
        return [float(item)]
    start, end = float(m.group(1)), float(m.group(2))
    if m.group(4) is not None:
        return [round(v, 10) for v in _linspace(start, end, int(m.group(4)))]
    step = float(m.group(3)) if m.group(3) is not None else (1.0 if end >= start else -1.0)
    if step == 0:
        raise ValueError(f"{item!r}: the step must not be 0")
    count = int(math.floor((end - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(max(count, 0))]


def parse_values(text: str, kind: str) -> list[Any]:
    """The values an axis text gives: ``kind`` is "int", "float", "str" or "permutations"."""
    items = csv_list(text)
    if kind == "int":
        return [v for item in items for v in _expand_int(item)]
    if kind == "float":
        return [v for item in items for v in _expand_float(item)]
    if kind == "permutations":
        return [list(order) for order in itertools.permutations(items)]
    return items


def list_to_csv(values: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([str(v) for v in values])
    return buf.getvalue()


# --- axes -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AxisOption:
    label: str
    kind: str  # "int", "float", "str", "permutations"
    apply: Callable[[Any, Any, list], None]  # (p, value, all values)
    format: str = "label"  # "label": "Steps: 20"; "value": the value alone; "join": list joined; "nothing"
    confirm: Callable[[Any, list], list] | None = None  # (p, values) -> values (canonical), or ValueError
    choices: Callable[[Any], list[str]] | None = None  # (engine) -> values for the dropdown
    cost: float = 0.0  # how expensive a change of value is: costly axes change least often
    tab: str | None = None  # "txt2img" / "img2img" when only there


def format_value(opt: AxisOption, value: Any) -> str:
    if opt.format == "nothing":
        return ""
    if opt.format == "join":
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        value = round(value, 8)
    return str(value) if opt.format == "value" else f"{opt.label}: {value}"


def _set(field: str) -> Callable[[Any, Any, list], None]:
    def apply(p: Any, value: Any, values: list) -> None:
        setattr(p, field, value)

    return apply


def _override(key: str) -> Callable[[Any, Any, list], None]:
    def apply(p: Any, value: Any, values: list) -> None:
        p.override_settings[key] = value

    return apply


def _apply_nothing(p: Any, value: Any, values: list) -> None:
    pass


def _apply_prompt_sr(p: Any, value: Any, values: list) -> None:
    search = values[0]
    prompt, negative = p.prompt, p.negative_prompt
    if search not in prompt and search not in negative:
        raise RequestError("script_args", f"Prompt S/R did not find {search!r} in the prompt or the negative prompt")
    p.prompt = prompt.replace(search, value)
    p.negative_prompt = negative.replace(search, value)


def reorder_prompt(prompt: str, order: Sequence[str]) -> str:
    """Put the listed parts of ``prompt`` in ``order``, each into the place where one of them stood."""
    found = sorted((prompt.find(token), token) for token in order if token in prompt)
    pieces, rest, cursor = [], prompt, 0
    for position, token in found:
        pieces.append(prompt[cursor:position])
        cursor = position + len(token)
    rest = prompt[cursor:]
    tokens = [t for t in order if t in prompt]
    return "".join(piece + token for piece, token in zip(pieces, tokens)) + rest


def _apply_order(p: Any, value: Any, values: list) -> None:
    p.prompt = reorder_prompt(p.prompt, value)


def _apply_size(p: Any, value: Any, values: list) -> None:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(value))
    if m is None:
        raise RequestError("script_args", f"Size {value!r}: expected WIDTHxHEIGHT, e.g. 512x768")
    p.width, p.height = int(m.group(1)), int(m.group(2))


def _apply_styles(p: Any, value: Any, values: list) -> None:
    p.styles = list(p.styles) + [s.strip() for s in str(value).split(",") if s.strip()]


def _apply_checkpoint(p: Any, value: Any, values: list) -> None:
    p.override_settings["sd_model_checkpoint"] = value


def _confirm_checkpoints_or_none(p: Any, values: list) -> list:
    """A1111's refiner axis: "None" is no refiner, anything else must find a checkpoint."""
    _confirm_checkpoints(p, [v for v in values if str(v) != "None"])
    return values


def _confirm_samplers(p: Any, values: list) -> list:
    out = []
    for v in values:
        found = samplers.find_sampler(str(v))
        if found is None:
            raise ValueError(f"unknown sampler {v!r}; known: {', '.join(s.name for s in samplers.SAMPLERS)}")
        out.append(found.name)
    return out


def _confirm_schedules(p: Any, values: list) -> list:
    out = []
    for v in values:
        found = samplers.find_schedule(str(v))
        if found is None:
            raise ValueError(f"unknown schedule type {v!r}; known: {', '.join(s.label for s in samplers.SCHEDULES)}")
        out.append(found.label)
    return out


def _confirm_checkpoints(p: Any, values: list) -> list:
    """Each name must find a checkpoint; the labels keep the names as given (a title grows its hash later)."""
    for v in values:
        try:
            p.engine.resolve_checkpoint(str(v))
        except Exception as exc:
            raise ValueError(f"checkpoint {v!r}: {exc}") from None
    return values


def _confirm_in(choices: Callable[[Any], list[str]], what: str) -> Callable[[Any, list], list]:
    def confirm(p: Any, values: list) -> list:
        known = choices(p.engine)
        lowered = {c.lower(): c for c in known}
        out = []
        for v in values:
            if str(v).lower() not in lowered:
                raise ValueError(f"unknown {what} {v!r}; known: {', '.join(known)}")
            out.append(lowered[str(v).lower()])
        return out

    return confirm


def _confirm_styles(p: Any, values: list) -> list:
    known = set(p.engine.styles.styles)
    for v in values:
        missing = [s.strip() for s in str(v).split(",") if s.strip() and s.strip() not in known]
        if missing:
            raise ValueError(f"unknown style {missing[0]!r}")
    return values


def _sampler_choices(engine: Any) -> list[str]:
    return [s.name for s in samplers.SAMPLERS]


def _schedule_choices(engine: Any) -> list[str]:
    return [s.label for s in samplers.SCHEDULES]


def _checkpoint_choices(engine: Any) -> list[str]:
    return [c.title for c in engine.available_checkpoints()]


def _vae_choices(engine: Any) -> list[str]:
    return engine.vaes.choices()


def _style_choices(engine: Any) -> list[str]:
    return list(engine.styles.styles)


def _upscaler_choices(engine: Any) -> list[str]:
    return engine.upscalers.hr_choices()


def _rng_choices(engine: Any) -> list[str]:
    return list(rng.RNG_SOURCES)


AXES: tuple[AxisOption, ...] = (
    AxisOption("Nothing", "str", _apply_nothing, format="nothing"),
    AxisOption("Seed", "int", _set("seed")),
    AxisOption("Var. seed", "int", _set("subseed")),
    AxisOption("Var. strength", "float", _set("subseed_strength")),
    AxisOption("Steps", "int", _set("steps")),
    AxisOption("Hires steps", "int", _set("hr_second_pass_steps"), tab="txt2img"),
    AxisOption("CFG Scale", "float", _set("cfg_scale")),
    AxisOption("Prompt S/R", "str", _apply_prompt_sr, format="value"),
    AxisOption("Prompt order", "permutations", _apply_order, format="join"),
    AxisOption("Sampler", "str", _set("sampler_name"), format="value", confirm=_confirm_samplers, choices=_sampler_choices),
    AxisOption("Hires sampler", "str", _set("hr_sampler_name"), format="value", confirm=_confirm_samplers,
               choices=_sampler_choices, tab="txt2img"),
    AxisOption("Checkpoint name", "str", _apply_checkpoint, format="value", confirm=_confirm_checkpoints,
               choices=_checkpoint_choices, cost=1.0),
    AxisOption("Schedule type", "str", _set("scheduler"), format="value", confirm=_confirm_schedules,
               choices=_schedule_choices),
    AxisOption("Eta", "float", _set("eta")),
    AxisOption("Clip skip", "int", _set("clip_skip")),
    AxisOption("Denoising", "float", _set("denoising_strength")),
    AxisOption("Initial noise multiplier", "float", _set("initial_noise_multiplier"), tab="img2img"),
    AxisOption("Hires upscaler", "str", _set("hr_upscaler"), format="value",
               confirm=_confirm_in(_upscaler_choices, "upscaler"), choices=_upscaler_choices, tab="txt2img"),
    AxisOption("VAE", "str", _override("sd_vae"), format="value", confirm=_confirm_in(_vae_choices, "VAE"),
               choices=_vae_choices, cost=0.7),
    AxisOption("Styles", "str", _apply_styles, format="value", confirm=_confirm_styles, choices=_style_choices),
    AxisOption("RNG source", "str", _override("randn_source"), format="value",
               confirm=_confirm_in(_rng_choices, "RNG source"), choices=_rng_choices),
    AxisOption("Size", "str", _apply_size, format="value"),
    AxisOption("Refiner checkpoint", "str", _set("refiner_checkpoint"), format="value",
               confirm=_confirm_checkpoints_or_none, choices=lambda engine: ["None", *_checkpoint_choices(engine)],
               cost=1.0),
    AxisOption("Refiner switch at", "float", _set("refiner_switch_at")),
)


def axis_options(is_img2img: bool) -> list[AxisOption]:
    tab = "img2img" if is_img2img else "txt2img"
    return [a for a in AXES if a.tab in (None, tab)]


def find_axis(value: Any, is_img2img: bool) -> AxisOption:
    """An axis by label (any case) or by index in this tab's list."""
    options = axis_options(is_img2img)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
        if 0 <= index < len(options):
            return options[index]
        raise RequestError("script_args", f"axis index {index} is out of range (0-{len(options) - 1})")
    low = str(value or "Nothing").strip().lower()
    for opt in options:
        if opt.label.lower() == low:
            return opt
    raise RequestError("script_args", f"unknown axis type {value!r}; choose one of: "
                                      f"{', '.join(o.label for o in options)}")


@dataclass
class Axis:
    option: AxisOption
    values: list[Any]
    text: str = ""  # the values as given (the infotext's "X Values")

    @property
    def labels(self) -> list[str]:
        return [format_value(self.option, v) for v in self.values]


def resolve_axis(p: Any, type_value: Any, text: Any, dropdown: Any, csv_mode: bool, name: str,
                 fix_seeds: bool) -> Axis:
    """The axis and its values (dropdown values when the axis has choices and text mode is off)."""
    opt = find_axis(type_value, p.is_img2img)
    if opt.label == "Nothing":
        return Axis(opt, [None], "")
    if opt.choices is not None and not csv_mode and dropdown:
        text = list_to_csv(dropdown if isinstance(dropdown, (list, tuple)) else [dropdown])
    try:
        values = parse_values(str(text or ""), opt.kind)
        if opt.confirm is not None:
            values = opt.confirm(p, values)
    except ValueError as exc:
        raise RequestError("script_args", f"{name} values ({opt.label}): {exc}") from None
    if not values:
        raise RequestError("script_args", f"{name} values ({opt.label}): no values given")
    if fix_seeds and opt.label in ("Seed", "Var. seed"):
        values = [rng.fix_seed(v) if v in (-1, None) else v for v in values]
    return Axis(opt, values, str(text or ""))


# --- grid -----------------------------------------------------------------------------------------

def blank_like(size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, (255, 255, 255))


def draw_xyz_grid(cells: list[list[list[Image.Image]]], x_labels: list[str], y_labels: list[str],
                  z_labels: list[str], *, draw_legend: bool, margin: int = 0) -> tuple[Image.Image | None, list[Image.Image]]:
    """(the Z grid or None when there is one Z value, [one X×Y grid per Z value]).

    ``cells[z][y][x]`` is each cell's image. Every sub-grid has the X labels above its columns and the Y
    labels left of its rows (when ``draw_legend``); the Z grid puts the sub-grids side by side, each under
    its Z label."""
    sub_grids = []
    for z_cells in cells:
        flat = [img for row in z_cells for img in row]
        cell_w, cell_h = map(max, zip(*(img.size for img in flat)))
        grid = grid_drawing.image_grid_with_margin(flat, rows=len(z_cells), margin=margin, cell_size=(cell_w, cell_h))
        if draw_legend:
            hor = [[grid_drawing.GridAnnotation(t)] for t in x_labels]
            ver = [[grid_drawing.GridAnnotation(t)] for t in y_labels]
            grid = grid_drawing.draw_grid_annotations(grid, cell_w, cell_h, hor, ver, margin)
        sub_grids.append(grid)
    if len(sub_grids) == 1:
        return None, sub_grids
    w, h = map(max, zip(*(g.size for g in sub_grids)))
    z_grid = grid_drawing.image_grid_with_margin(sub_grids, rows=1, margin=margin, cell_size=(w, h))
    if draw_legend:
        hor = [[grid_drawing.GridAnnotation(t)] for t in z_labels]
        z_grid = grid_drawing.draw_grid_annotations(z_grid, w, h, hor, [[grid_drawing.GridAnnotation()]], margin)
    return z_grid, sub_grids


def cell_image(processed: Processed, size: tuple[int, int]) -> Image.Image:
    """One picture per cell: the image, or a grid of them when the cell made several (batch size/count)."""
    images = processed.images[processed.index_of_first_image:]
    if not images:
        return blank_like(size)
    if len(images) == 1:
        return images[0]
    from modules.core import image_files

    return image_files.image_grid(images)


def loop_order(axes: dict[str, Axis]) -> list[str]:
    """Axis names from the outer loop to the inner one: the costliest axis (checkpoint, VAE) changes least
    often; otherwise Z outermost and X innermost."""
    default = ["z", "y", "x"]
    return sorted(default, key=lambda n: (-axes[n].option.cost, default.index(n)))


# --- the script -----------------------------------------------------------------------------------

class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return True

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        options = axis_options(is_img2img)
        labels = [o.label for o in options]
        engine = self.engine
        by_label = {o.label: o for o in options}

        def axis_row(name: str, default: str):
            with gr.Row():
                kind = gr.Dropdown(label=f"{name} type", choices=labels, value=default, elem_id=self.elem_id(f"{name.lower()}_type"))
                text = gr.Textbox(label=f"{name} values", lines=1, elem_id=self.elem_id(f"{name.lower()}_values"))
                # allow_custom_value: the choices follow the axis type, and Gradio checks a value against the
                # choices it knew when the event started (a swap would be refused); run() confirms the values.
                drop = gr.Dropdown(label=f"{name} values", choices=[], multiselect=True, visible=False,
                                   allow_custom_value=True, elem_id=self.elem_id(f"{name.lower()}_values_dropdown"))
            return kind, text, drop

        with gr.Column():
            x_type, x_values, x_drop = axis_row("X", "Seed")
            y_type, y_values, y_drop = axis_row("Y", "Nothing")
            z_type, z_values, z_drop = axis_row("Z", "Nothing")
            with gr.Row():
                draw_legend = gr.Checkbox(label="Draw legend", value=True, elem_id=self.elem_id("draw_legend"))
                no_fixed_seeds = gr.Checkbox(label="Keep -1 for seeds", value=False, elem_id=self.elem_id("no_fixed_seeds"))
                vary_x = gr.Checkbox(label="Vary seeds for X", value=False, elem_id=self.elem_id("vary_seeds_x"))
                vary_y = gr.Checkbox(label="Vary seeds for Y", value=False, elem_id=self.elem_id("vary_seeds_y"))
                vary_z = gr.Checkbox(label="Vary seeds for Z", value=False, elem_id=self.elem_id("vary_seeds_z"))
            with gr.Row():
                include_lone = gr.Checkbox(label="Include Sub Images", value=False, elem_id=self.elem_id("include_lone_images"))
                include_sub_grids = gr.Checkbox(label="Include Sub Grids", value=False, elem_id=self.elem_id("include_sub_grids"))
                csv_mode = gr.Checkbox(label="Use text inputs instead of dropdowns", value=False, elem_id=self.elem_id("csv_mode"))
            margin = gr.Slider(label="Grid margins (px)", minimum=0, maximum=500, value=0, step=2, elem_id=self.elem_id("margin_size"))
            with gr.Row(elem_id=self.elem_id("swap_axes")):  # A1111's three swap buttons, under the options
                swap_xy = gr.Button("Swap X/Y axes", size="sm", elem_id=self.elem_id("swap_xy"))
                swap_yz = gr.Button("Swap Y/Z axes", size="sm", elem_id=self.elem_id("swap_yz"))
                swap_xz = gr.Button("Swap X/Z axes", size="sm", elem_id=self.elem_id("swap_xz"))

        def switch(axis_label: str, text_mode: bool, current: Any = None):
            opt = by_label.get(axis_label)
            has_choices = opt is not None and opt.choices is not None and not text_mode
            choices = opt.choices(engine) if has_choices and engine is not None else []
            kept = [v for v in (current or []) if v in choices]  # a swap brings its values along
            return gr.update(visible=not has_choices), gr.update(visible=has_choices, choices=choices, value=kept)

        for kind, text, drop in ((x_type, x_values, x_drop), (y_type, y_values, y_drop), (z_type, z_values, z_drop)):
            # .input, not .change: a swap sets the other controls itself (a change event would read them stale)
            kind.input(switch, inputs=[kind, csv_mode, drop], outputs=[text, drop], api_visibility="private")
        csv_mode.change(lambda a, b, c, mode: [*switch(a, mode), *switch(b, mode), *switch(c, mode)],
                        inputs=[x_type, y_type, z_type, csv_mode],
                        outputs=[x_values, x_drop, y_values, y_drop, z_values, z_drop], api_visibility="private")
        rows = {"x": [x_type, x_values, x_drop], "y": [y_type, y_values, y_drop], "z": [z_type, z_values, z_drop]}

        def swap(a_type, a_text, a_drop, b_type, b_text, b_drop, text_mode):
            def axis(kind, text, drop):  # the dropdown gets the new type's choices with its values
                text_update, drop_update = switch(kind, text_mode, drop)
                return kind, {**text_update, "value": text}, drop_update
            return (*axis(b_type, b_text, b_drop), *axis(a_type, a_text, a_drop))

        for button, (a, b) in ((swap_xy, "xy"), (swap_yz, "yz"), (swap_xz, "xz")):
            button.click(swap, inputs=rows[a] + rows[b] + [csv_mode], outputs=rows[a] + rows[b],
                         api_visibility="private")
        return [x_type, x_values, x_drop, y_type, y_values, y_drop, z_type, z_values, z_drop, draw_legend,
                include_lone, include_sub_grids, no_fixed_seeds, vary_x, vary_y, vary_z, margin, csv_mode]

    def run(self, p: Any, x_type: Any = "Nothing", x_values: Any = "", x_values_dropdown: Any = None,
            y_type: Any = "Nothing", y_values: Any = "", y_values_dropdown: Any = None,
            z_type: Any = "Nothing", z_values: Any = "", z_values_dropdown: Any = None,
            draw_legend: bool = True, include_lone_images: bool = False, include_sub_grids: bool = False,
            no_fixed_seeds: bool = False, vary_seeds_x: bool = False, vary_seeds_y: bool = False,
            vary_seeds_z: bool = False, margin_size: int = 0, csv_mode: bool = False, *_: Any) -> Processed:
        fix = not no_fixed_seeds
        axes = {
            "x": resolve_axis(p, x_type, x_values, x_values_dropdown, bool(csv_mode), "X", fix),
            "y": resolve_axis(p, y_type, y_values, y_values_dropdown, bool(csv_mode), "Y", fix),
            "z": resolve_axis(p, z_type, z_values, z_values_dropdown, bool(csv_mode), "Z", fix),
        }
        if fix and not isinstance(p.seed, list):
            p.seed = rng.fix_seed(p.seed)
        xs, ys, zs = axes["x"], axes["y"], axes["z"]
        total = len(xs.values) * len(ys.values) * len(zs.values)
        state = p.engine.state
        state.job_count = total * p.n_iter

        results: dict[tuple[int, int, int], Processed] = {}
        order = loop_order(axes)
        ranges = {"x": range(len(xs.values)), "y": range(len(ys.values)), "z": range(len(zs.values))}
        first_done = False
        for combo in itertools.product(*(ranges[name] for name in order)):
            if state.interrupted:
                break
            pos = dict(zip(order, combo))
            ix, iy, iz = pos["x"], pos["y"], pos["z"]
            pc = copy.copy(p)
            for name, index in (("x", ix), ("y", iy), ("z", iz)):
                axis = axes[name]
                axis.option.apply(pc, axis.values[index], axis.values)
            if isinstance(pc.seed, int) and pc.seed != -1:
                pc.seed += (ix if vary_seeds_x else 0) + (iy * len(xs.values) if vary_seeds_y else 0) \
                    + (iz * len(xs.values) * len(ys.values) if vary_seeds_z else 0)
            if not first_done:
                # The first cell's infotext is the grid's: it names the axes (A1111).
                extra = pc.extra_generation_params
                extra["Script"] = TITLE
                for name in ("x", "y", "z"):
                    axis = axes[name]
                    if axis.option.label != "Nothing":
                        extra[f"{name.upper()} Type"] = axis.option.label
                        extra[f"{name.upper()} Values"] = axis.text
                        if axis.option.label in ("Seed", "Var. seed") and fix:
                            extra[f"Fixed {name.upper()} Values"] = ", ".join(str(v) for v in axis.values)
                first_done = True
            results[(ix, iy, iz)] = processing.process_images(pc)

        if not results:
            return processing.combined_processed(p, [], [], [])
        first_key = next(iter(results))
        size = cell_image(results[first_key], (p.width, p.height)).size
        cells = [[[cell_image(results[(ix, iy, iz)], size) if (ix, iy, iz) in results else blank_like(size)
                   for ix in ranges["x"]] for iy in ranges["y"]] for iz in ranges["z"]]
        z_grid, sub_grids = draw_xyz_grid(cells, xs.labels, ys.labels, zs.labels, draw_legend=bool(draw_legend),
                                          margin=int(margin_size or 0))
        grid_text = results[first_key].infotexts[0] if results[first_key].infotexts else ""
        grids = ([z_grid] if z_grid is not None else []) + (sub_grids if z_grid is None or include_sub_grids else [])
        for grid in ([z_grid] if z_grid is not None else []) + sub_grids:
            path = processing.save_grid(p, grid, grid_text)
            if path:
                results[first_key].saved_paths.append(path)
        ordered = [results[key] for key in sorted(results, key=lambda k: (k[2], k[1], k[0]))]
        return processing.combined_processed(p, ordered, grids, [grid_text] * len(grids),
                                             include_images=bool(include_lone_images))
