"""Prompts from file or textbox (spec §12.4): one generation per non-empty line.

A line holding ``--`` is read shell-style as options: ``--prompt "a cat" --negative_prompt ugly --steps 20
--seed 5 --sampler_name Euler --cfg_scale 7 --width 512 --height 512 ...`` (the keys of :data:`LINE_OPTIONS`;
``--prompt``/``--negative_prompt`` take every word up to the next ``--``). Any other line is the prompt.
A line's prompt goes before ("start") or after ("end") the prompt of the tab, when that one is not empty.

Arguments (A1111's order): checkbox_iterate ("Iterate seed every line"), checkbox_iterate_batch ("Use same
random seed for all lines"), prompt_position ("start"/"end"), prompt_txt.
"""
from __future__ import annotations

import copy
import logging
import random
import shlex
from typing import Any, Callable

from modules import processing, rng, scripts
from modules.core.request import Processed, RequestError

log = logging.getLogger(__name__)

TITLE = "Prompts from file or textbox"


def _bool(text: str) -> bool:
    return str(text).strip().lower() == "true"


def _styles(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(",") if s.strip()]


# key -> converter of its value (None: the value is a checkpoint name for the override)
LINE_OPTIONS: dict[str, Callable[[str], Any] | None] = {
    "sd_model": None,
    "outpath_samples": str,
    "outpath_grids": str,
    "prompt_for_display": str,
    "prompt": str,
    "negative_prompt": str,
    "styles": _styles,
    "seed": int,
    "subseed_strength": float,
    "subseed": int,
    "seed_resize_from_h": int,
    "seed_resize_from_w": int,
    "sampler_index": int,
    "sampler_name": str,
    "batch_size": int,
    "n_iter": int,
    "steps": int,
    "cfg_scale": float,
    "width": int,
    "height": int,
    "restore_faces": _bool,
    "tiling": _bool,
    "do_not_save_samples": _bool,
    "do_not_save_grid": _bool,
}
_WORDY = ("prompt", "negative_prompt")


def parse_line(line: str) -> dict[str, Any]:
    """The options of one ``--key value`` line; ValueError says which item is wrong."""
    args = shlex.split(line)
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(args):
        arg = args[pos]
        if not arg.startswith("--"):
            raise ValueError(f"expected an option starting with '--', got {arg!r}")
        key = arg[2:]
        if key not in LINE_OPTIONS:
            raise ValueError(f"unknown option {arg}; known: {', '.join('--' + k for k in LINE_OPTIONS)}")
        if pos + 1 >= len(args):
            raise ValueError(f"missing value for {arg}")
        if key in _WORDY:
            words = []
            pos += 1
            while pos < len(args) and not args[pos].startswith("--"):
                words.append(args[pos])
                pos += 1
            out[key] = " ".join(words)
            continue
        convert = LINE_OPTIONS[key]
        value = args[pos + 1]
        try:
            out[key] = convert(value) if convert is not None else value
        except ValueError:
            raise ValueError(f"{arg}: cannot read {value!r}") from None
        pos += 2
    return out


def parse_jobs(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    """(one options dict per non-empty line, warnings for lines read as plain prompts after an error)."""
    jobs, warnings = [], []
    for line in (x.strip() for x in str(text or "").splitlines()):
        if not line:
            continue
        if "--" in line:
            try:
                jobs.append(parse_line(line))
                continue
            except ValueError as exc:
                warnings.append(f"Prompts from file: line {line!r} read as a prompt ({exc})")
                log.warning("%s", warnings[-1])
        jobs.append({"prompt": line})
    return jobs, warnings


def apply_job(p: Any, job: dict[str, Any], position: str) -> Any:
    """A copy of ``p`` with the line's options applied."""
    pc = copy.copy(p)
    for key, value in job.items():
        if key == "sd_model":
            pc.override_settings["sd_model_checkpoint"] = value
        elif key == "sampler_index":
            from modules.core import samplers

            if not 0 <= value < len(samplers.SAMPLERS):
                raise RequestError("script_args", f"--sampler_index {value}: out of range")
            pc.sampler_name = samplers.SAMPLERS[value].name
        elif key in _WORDY:
            base = getattr(p, key)
            if value and base:
                value = f"{value} {base}" if position == "start" else f"{base} {value}"
            setattr(pc, key, value or base)
        elif key == "restore_faces":
            continue  # no face restoration in this app
        else:
            setattr(pc, key, value)
    return pc


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return True

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        with gr.Row():
            iterate = gr.Checkbox(label="Iterate seed every line", value=False, elem_id=self.elem_id("checkbox_iterate"))
            same_seed = gr.Checkbox(label="Use same random seed for all lines", value=False,
                                    elem_id=self.elem_id("checkbox_iterate_batch"))
        position = gr.Radio(["start", "end"], label="Insert prompts at the", value="start",
                            elem_id=self.elem_id("prompt_position"))
        text = gr.Textbox(label="List of prompt inputs", lines=2, elem_id=self.elem_id("prompt_txt"))
        upload = gr.File(label="Upload prompt inputs", type="binary", elem_id=self.elem_id("file"))

        def load(data: Any) -> Any:
            if data is None:
                return gr.update()
            raw = data if isinstance(data, bytes) else bytes(data)
            return raw.decode("utf-8", errors="replace")

        upload.change(load, inputs=[upload], outputs=[text], api_visibility="private")
        return [iterate, same_seed, position, text]

    def run(self, p: Any, checkbox_iterate: bool = False, checkbox_iterate_batch: bool = False,
            prompt_position: str = "start", prompt_txt: str = "", *_: Any) -> Processed:
        jobs, warnings = parse_jobs(prompt_txt)
        if not jobs:
            raise RequestError("script_args", "Prompts from file: no prompts given (one per line)")
        p.do_not_save_grid = True
        if (checkbox_iterate or checkbox_iterate_batch) and not isinstance(p.seed, list) and p.seed == -1:
            p.seed = int(random.randrange(rng.MAX_SEED))
        state = p.engine.state
        state.job_count = sum(int(job.get("n_iter", p.n_iter)) for job in jobs)
        parts = []
        for job in jobs:
            if state.interrupted:
                break
            pc = apply_job(p, job, prompt_position)
            parts.append(processing.process_images(pc))
            if checkbox_iterate and not isinstance(p.seed, list):
                p.seed = p.seed + p.batch_size * p.n_iter
        out = processing.combined_processed(p, parts, [], [])
        out.warnings = warnings + out.warnings
        out.info["warnings"] = out.warnings
        return out
