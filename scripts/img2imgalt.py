"""A1111's built-in "img2img alternative test" (img2img): find the noise the init image came from by running Euler
backwards with the *original* prompt (the one that describes the picture), then sample from that noise with the
request's prompt. With the original prompt and randomness 0 the picture comes back; another prompt changes
what it shows while keeping its composition.

Arguments (A1111's order): ``info`` (ignored), ``override_sampler`` (Euler), ``override_prompt`` (prompt and
negative prompt := the original ones), ``original_prompt``, ``original_negative_prompt``, ``override_steps``
(steps := decode steps), ``st`` (decode steps), ``override_strength`` (denoising strength := 1), ``cfg`` (decode
CFG scale), ``randomness`` (0: the found noise, 1: the seed's noise), ``sigma_adjustment``. The found noise is
kept for the next run with the same image and inversion settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modules import processing, scripts
from modules.core.request import RequestError
from modules.core.sampling.inversion import blend_noise

TITLE = "img2img alternative test"


@dataclass
class _Found:
    """The noise found for an init image (its latents rounded, as A1111 compares them) and inversion settings."""
    key: tuple
    latents: torch.Tensor
    noise: torch.Tensor


class Script(scripts.Script):
    def __init__(self) -> None:
        self.found: _Found | None = None

    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        info = gr.Markdown("* `CFG Scale` should be 2 or lower.")
        override_sampler = gr.Checkbox(label="Override `Sampling method` to Euler?(this method is built for it)",
                                       value=True, elem_id=self.elem_id("override_sampler"))
        override_prompt = gr.Checkbox(label="Override `prompt` to the same value as `original prompt`?(and "
                                            "`negative prompt`)", value=True, elem_id=self.elem_id("override_prompt"))
        original_prompt = gr.Textbox(label="Original prompt", lines=1, elem_id=self.elem_id("original_prompt"))
        original_negative_prompt = gr.Textbox(label="Original negative prompt", lines=1,
                                              elem_id=self.elem_id("original_negative_prompt"))
        override_steps = gr.Checkbox(label="Override `Sampling Steps` to the same value as `Decode steps`?",
                                     value=True, elem_id=self.elem_id("override_steps"))
        st = gr.Slider(label="Decode steps", minimum=1, maximum=150, step=1, value=50, elem_id=self.elem_id("st"))
        override_strength = gr.Checkbox(label="Override `Denoising strength` to 1?", value=True,
                                        elem_id=self.elem_id("override_strength"))
        cfg = gr.Slider(label="Decode CFG scale", minimum=0.0, maximum=15.0, step=0.1, value=1.0,
                        elem_id=self.elem_id("cfg"))
        randomness = gr.Slider(label="Randomness", minimum=0.0, maximum=1.0, step=0.01, value=0.0,
                               elem_id=self.elem_id("randomness"))
        sigma_adjustment = gr.Checkbox(label="Sigma adjustment for finding noise for image", value=False,
                                       elem_id=self.elem_id("sigma_adjustment"))
        return [info, override_sampler, override_prompt, original_prompt, original_negative_prompt, override_steps,
                st, override_strength, cfg, randomness, sigma_adjustment]

    def run(self, p: Any, _info: Any = None, override_sampler: Any = True, override_prompt: Any = True,
            original_prompt: Any = "", original_negative_prompt: Any = "", override_steps: Any = True, st: Any = 50,
            override_strength: Any = True, cfg: Any = 1.0, randomness: Any = 0.0, sigma_adjustment: Any = False,
            *_: Any) -> Any:
        if not p.init_images:
            raise RequestError("init_images", "img2img alternative test needs an init image")
        st, cfg, randomness = int(st), float(cfg), float(randomness)
        if not 1 <= st <= 150:
            raise RequestError("script_args", f"img2img alternative test: decode steps must be 1..150, got {st}")
        if not 0.0 <= randomness <= 1.0:
            raise RequestError("script_args", f"img2img alternative test: randomness must be 0..1, got {randomness}")
        original_prompt, original_negative_prompt = str(original_prompt or ""), str(original_negative_prompt or "")
        if override_sampler:
            p.sampler_name = "Euler"
        if override_prompt:
            p.prompt, p.negative_prompt = original_prompt, original_negative_prompt
        if override_steps:
            p.steps = st
        if override_strength:
            p.denoising_strength = 1.0

        def noise_for(init_latents: torch.Tensor, seed_noise: torch.Tensor, sampler: Any, find_noise: Any) -> Any:
            rounded = (init_latents.float() * 10).to(torch.int64).cpu()
            key = (cfg, st, original_prompt, original_negative_prompt, bool(sigma_adjustment))
            cached = self.found
            if cached is None or cached.key != key or not torch.equal(cached.latents, rounded):
                p.engine.state.job_count += 1
                found = find_noise(original_prompt, original_negative_prompt, cfg, st, bool(sigma_adjustment))
                self.found = _Found(key, rounded, found)
            combined = blend_noise(self.found.noise, seed_noise.to(self.found.noise), randomness)
            first_sigma = sampler.get_sigmas(p.steps)[0].to(combined)
            # img2img starts from init + noise·σ₀: this makes it start from combined·σ₀, the found noise itself.
            return combined - init_latents.to(combined) / first_sigma

        p.img2img_noise = noise_for
        return processing.process_images(p)
