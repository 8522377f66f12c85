"""The denoising loop: diffusers UNet + scheduler, driven by us.

Owning the loop is what lets the conditioning change at any step (prompt editing,
alternation) and several weighted conditionings be combined in one step (AND):
    denoised = uncond + sum_i w_i * (cond_i - uncond) * cfg_scale
The step counter handed to the prompt schedules is the denoiser call index, as in A1111,
so a second-order sampler advances the schedules twice per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import torch

from modules.core import prompt_parser
from modules.engine.hooks import AfterCFGCallbackParams, CFGDenoisedParams, CFGDenoiserParams, SamplingCallbacks

Cond = Union[torch.Tensor, dict]


@dataclass
class InpaintBlend:
    """Keep the unmasked area of img2img on the original: mask is 1 where to regenerate."""

    init_latents: torch.Tensor
    mask: torch.Tensor  # (B, 1, h, w)
    noise: torch.Tensor


@dataclass
class SamplingInputs:
    cond: prompt_parser.MulticondLearnedConditioning
    uncond: list  # list[list[ScheduledPromptConditioning]]
    cfg_scale: float
    empty_chunk: Cond  # one empty-prompt chunk, to pad conditionings of different lengths
    time_ids: torch.Tensor | None = None  # SDXL micro-conditioning, one row per image
    inpaint_cond: torch.Tensor | None = None  # mask + masked-image latents for 9-channel UNets
    blend: InpaintBlend | None = None
    # on_cfg_denoiser / on_cfg_denoised / on_cfg_after_cfg: an object with run(kind, params) and has(kind)
    # (script_callbacks.BoundCallbacks), or None
    callbacks: SamplingCallbacks | None = None


def _crossattn(c: Cond) -> torch.Tensor:
    return c["crossattn"] if isinstance(c, dict) else c


def _with_crossattn(c: Cond, x: torch.Tensor) -> Cond:
    if isinstance(c, dict):
        return {**c, "crossattn": x}
    return x


def pad_to_tokens(c: Cond, tokens: int, empty_chunk: Cond) -> Cond:
    """Append empty-prompt chunks until the token axis has `tokens` entries."""
    x = _crossattn(c)
    missing = tokens - x.shape[1]
    if missing <= 0:
        return c
    empty = _crossattn(empty_chunk).to(x.device, x.dtype)
    reps = -(-missing // empty.shape[1])
    pad = empty.expand(x.shape[0], -1, -1).repeat(1, reps, 1)[:, :missing]
    return _with_crossattn(c, torch.cat([x, pad], dim=1))


def _cat(conds: Sequence[Cond]) -> Cond:
    if isinstance(conds[0], dict):
        return {k: torch.cat([c[k] for c in conds]) for k in conds[0]}
    return torch.cat(list(conds))


def combine_denoised(x_out: torch.Tensor, conds_list: list, uncond_out: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    out = uncond_out.clone()
    for i, conds in enumerate(conds_list):
        for cond_index, weight in conds:
            out[i] += (x_out[cond_index] - uncond_out[i]) * (weight * cfg_scale)
    return out


class CFGDenoiser:
    """One classifier-free-guided UNet evaluation with A1111's composable conditioning."""

    def __init__(self, unet: torch.nn.Module, inputs: SamplingInputs, total_steps: int = 0) -> None:
        self.unet = unet
        self.inputs = inputs
        self.dtype = next(unet.parameters()).dtype
        self.total_steps = total_steps

    def __call__(self, x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
        inp = self.inputs
        conds_list, tensor = prompt_parser.reconstruct_multicond_batch(inp.cond, step)
        batch = x.shape[0]
        repeats = [len(c) for c in conds_list]
        skip_uncond = inp.cfg_scale == 1.0
        x_rows = [x[i:i + 1].expand(n, *x.shape[1:]) for i, n in enumerate(repeats)]
        conds = [tensor]
        if not skip_uncond:
            uncond = prompt_parser.reconstruct_cond_batch(inp.uncond, step)
            tokens = max(_crossattn(tensor).shape[1], _crossattn(uncond).shape[1])
            conds = [pad_to_tokens(tensor, tokens, inp.empty_chunk), pad_to_tokens(uncond, tokens, inp.empty_chunk)]
            x_rows.append(x)
        x_in = torch.cat(x_rows)
        callbacks = inp.callbacks
        if callbacks is not None and callbacks.has("cfg_denoiser"):
            x_in, conds = self._before_unet(callbacks, x_in, conds, t, step, skip_uncond)
        c_in = _cat(conds)
        row_image = [i for i, n in enumerate(repeats) for _ in range(n)]
        if not skip_uncond:
            row_image += list(range(batch))
        if inp.inpaint_cond is not None:
            x_in = torch.cat([x_in, inp.inpaint_cond[row_image].to(x_in)], dim=1)
        kwargs: dict[str, Any] = {}
        if isinstance(c_in, dict):
            kwargs["added_cond_kwargs"] = {
                "text_embeds": c_in["pooled"].to(self.dtype),
                "time_ids": inp.time_ids[row_image].to(x.device, self.dtype),
            }
        out = self.unet(
            x_in.to(self.dtype),
            t,
            encoder_hidden_states=_crossattn(c_in).to(self.dtype),
            return_dict=False,
            **kwargs,
        )[0].float()
        if callbacks is not None and callbacks.has("cfg_denoised"):

            params = CFGDenoisedParams(out, step, self.total_steps, self.unet)
            callbacks.run("cfg_denoised", params)
            out = params.x
        if skip_uncond:
            # No unconditional pass: the first conditioning of each image stands in for it.
            firsts = torch.stack([out[conds[0][0]] for conds in conds_list])
            result = combine_denoised(out, conds_list, firsts, 1.0) if any(len(c) > 1 for c in conds_list) else firsts
        else:
            result = combine_denoised(out[:-batch], conds_list, out[-batch:], inp.cfg_scale)
        if callbacks is not None and callbacks.has("cfg_after_cfg"):

            params = AfterCFGCallbackParams(result, step, self.total_steps)
            callbacks.run("cfg_after_cfg", params)
            result = params.x
        return result

    def _before_unet(self, callbacks: Any, x_in: torch.Tensor, conds: list, t: torch.Tensor, step: int,
                     skip_uncond: bool) -> tuple[torch.Tensor, list]:
        """on_cfg_denoiser: callbacks see (and may replace) the UNet input and both conditionings."""

        text_cond = conds[0]
        text_uncond = None if skip_uncond else conds[1]
        params = CFGDenoiserParams(x_in, self.inputs.inpaint_cond, t, step, self.total_steps, text_cond, text_uncond, self)
        callbacks.run("cfg_denoiser", params)
        new_conds = [params.text_cond] if skip_uncond else [params.text_cond, params.text_uncond]
        return params.x, new_conds


def sample(
    unet: torch.nn.Module,
    scheduler: Any,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    inputs: SamplingInputs,
    *,
    generators: list[torch.Generator] | None = None,
    check: Callable[[], None] = lambda: None,
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
    progress_bar: Any = None,
) -> torch.Tensor:
    total = len(timesteps)
    denoiser = CFGDenoiser(unet, inputs, total)
    blend = inputs.blend
    for i, t in enumerate(timesteps):
        check()
        model_in = scheduler.scale_model_input(latents, t)
        noise_pred = denoiser(model_in, t, i)
        step_kwargs: dict[str, Any] = {}
        if generators is not None and _accepts_generator(scheduler):
            step_kwargs["generator"] = generators
        latents = scheduler.step(noise_pred, t, latents, return_dict=False, **step_kwargs)[0]
        if blend is not None:
            if i + 1 < total:
                keep = scheduler.add_noise(blend.init_latents, blend.noise, timesteps[i + 1:i + 2])
            else:
                keep = blend.init_latents
            latents = keep * (1 - blend.mask) + latents * blend.mask
        if on_step is not None:
            on_step(i + 1, total, latents)
        if progress_bar is not None:
            progress_bar.update(1)
    return latents


def _accepts_generator(scheduler: Any) -> bool:
    import inspect

    return "generator" in inspect.signature(scheduler.step).parameters
