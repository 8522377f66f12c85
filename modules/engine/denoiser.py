"""The UNet as A1111's samplers see it, and classifier-free guidance on top (A1111's ``CFGDenoiser``).

Three inner models, one per sampler family:

* :class:`SigmaDenoiser` – k-diffusion's ``CompVisDenoiser`` / ``CompVisVDenoiser``: input ``x / sqrt(σ²+1)``, the
  *fractional* timestep ``sigma_to_t(σ)``, output the denoised latent (ε and v-prediction).
* :class:`LCMDenoiser` – the same with LCM's timestep grid and its boundary-condition output scaling.
* :class:`TimestepDenoiser` – DDIM/PLMS/UniPC: unscaled input at timestep ``t``, output ε (v converted to ε).

:class:`CFGDenoiser` runs cond and uncond rows through one of them in one batch (separately when their token
lengths differ, as A1111 does), applies CFG to the predictions including ``AND`` weights, blends the inpainting
mask, runs the ``on_cfg_*`` callbacks with A1111's parameter objects, and keeps ``last_latent`` (the conditional
x₀ prediction) that Interrupt and Skip hand back. It raises :class:`GenerationInterrupted` at the start of a call
once the job is interrupted or skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import torch

from modules.core import prompt_parser
from modules.core.sampling.discrete import DiscreteSchedule, LCMSchedule
from modules.engine.hooks import (AfterCFGCallbackParams, CFGDenoisedParams, CFGDenoiserParams, MaskBlendArgs,
                                  SamplingCallbacks)

Cond = Union[torch.Tensor, dict]


# --- UNet call ------------------------------------------------------------------------------------------------------


@dataclass
class RowCond:
    """What the UNet gets besides x and t, one row per UNet batch row."""

    crossattn: torch.Tensor
    pooled: torch.Tensor | None = None  # SDXL text_embeds
    time_ids: torch.Tensor | None = None  # SDXL micro-conditioning
    concat: torch.Tensor | None = None  # 9-channel inpainting UNets: mask + masked-image latents


def call_unet(unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, cond: RowCond) -> torch.Tensor:
    dtype = next(unet.parameters()).dtype
    if cond.concat is not None:
        x = torch.cat([x, cond.concat.to(x)], dim=1)
    kwargs: dict[str, Any] = {}
    if cond.pooled is not None:
        kwargs["added_cond_kwargs"] = {"text_embeds": cond.pooled.to(x.device, dtype),
                                       "time_ids": cond.time_ids.to(x.device, dtype)}
    out = unet(x.to(dtype), t.to(x.device), encoder_hidden_states=cond.crossattn.to(x.device, dtype),
               return_dict=False, **kwargs)[0]
    return out.float()


def _dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v[(...,) + (None,) * (ndim - v.ndim)]


class SigmaDenoiser:
    """x, σ → denoised x₀ over the model's discrete schedule (k-diffusion's CompVis(V)Denoiser)."""

    def __init__(self, unet: torch.nn.Module, schedule: DiscreteSchedule, prediction_type: str = "epsilon") -> None:
        self.unet = unet
        self.schedule = schedule
        self.v_prediction = prediction_type == "v_prediction"
        self.sigmas = schedule.sigmas
        self.log_sigmas = schedule.log_sigmas

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.schedule.sigma_to_t(sigma)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.t_to_sigma(t)

    def get_sigmas(self, n: int | None = None) -> torch.Tensor:
        return self.schedule.get_sigmas(n)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: RowCond) -> torch.Tensor:
        sigma = sigma.to(x.device)
        c_in = _dims(1 / (sigma ** 2 + 1.0) ** 0.5, x.ndim)
        out = call_unet(self.unet, x * c_in, self.sigma_to_t(sigma), cond)
        if self.v_prediction:
            c_skip = _dims(1.0 / (sigma ** 2 + 1.0), x.ndim)
            c_out = _dims(-sigma * 1.0 / (sigma ** 2 + 1.0) ** 0.5, x.ndim)
            return out * c_out + x * c_skip
        return x + out * _dims(-sigma, x.ndim)


class LCMDenoiser(SigmaDenoiser):
    """LCM: timesteps snap to its 50-step grid; the output is ``c_out·x₀ + c_skip·x`` with σ_data 0.5 at 10·t."""

    def __init__(self, unet: torch.nn.Module, abar: torch.Tensor) -> None:
        super().__init__(unet, LCMSchedule(abar), "epsilon")

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond: RowCond) -> torch.Tensor:
        sigma = sigma.to(x.device)
        c_in = _dims(1 / (sigma ** 2 + 1.0) ** 0.5, x.ndim)
        t = self.sigma_to_t(sigma)
        eps = call_unet(self.unet, x * c_in, t, cond)
        denoised = x + eps * _dims(-sigma, x.ndim)
        scaled_t = _dims(t, x.ndim) * 10.0
        c_skip = 0.5 ** 2 / (scaled_t ** 2 + 0.5 ** 2)
        c_out = scaled_t / (scaled_t ** 2 + 0.5 ** 2) ** 0.5
        return c_out * denoised + c_skip * x


class TimestepDenoiser:
    """x, t → ε at a DDPM timestep (DDIM, PLMS, UniPC); v-prediction converted with ᾱ at int(t)."""

    def __init__(self, unet: torch.nn.Module, abar: torch.Tensor, prediction_type: str = "epsilon") -> None:
        self.unet = unet
        self.alphas_cumprod = abar
        self.v_prediction = prediction_type == "v_prediction"

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: RowCond) -> torch.Tensor:
        out = call_unet(self.unet, x, t, cond)
        if not self.v_prediction:
            return out
        idx = t.to(torch.int).cpu()
        a = self.alphas_cumprod.cpu()
        return (_dims(a[idx].sqrt(), x.ndim).to(x) * out + _dims((1 - a[idx]).sqrt(), x.ndim).to(x) * x)


# --- conditioning helpers -------------------------------------------------------------------------------------------


def _crossattn(c: Cond) -> torch.Tensor:
    return c["crossattn"] if isinstance(c, dict) else c


def _with_crossattn(c: Cond, x: torch.Tensor) -> Cond:
    return {**c, "crossattn": x} if isinstance(c, dict) else x


def pad_to_tokens(c: Cond, tokens: int, empty_chunk: Cond) -> Cond:
    """Append empty-prompt chunks until the token axis has ``tokens`` entries (setting "Pad prompt/negative prompt")."""
    x = _crossattn(c)
    missing = tokens - x.shape[1]
    if missing <= 0:
        return c
    empty = _crossattn(empty_chunk).to(x.device, x.dtype)
    reps = -(-missing // empty.shape[1])
    pad = empty.expand(x.shape[0], -1, -1).repeat(1, reps, 1)[:, :missing]
    return _with_crossattn(c, torch.cat([x, pad], dim=1))


def pad_v0(cond: Cond, uncond: Cond) -> Cond:
    """A1111's pre-1.6 DDIM padding ("Pad conds v0"): repeat the uncond's last vector, or cut it, to the cond length."""
    u = _crossattn(uncond)
    n = _crossattn(cond).shape[1]
    if u.shape[1] < n:
        u = torch.hstack([u, u[:, -1:].repeat([1, n - u.shape[1], 1])])
    elif u.shape[1] > n:
        u = u[:, :n]
    return _with_crossattn(uncond, u)


def _cat(conds: Sequence[Cond]) -> Cond:
    if isinstance(conds[0], dict):
        return {k: torch.cat([c[k] for c in conds]) for k in conds[0]}
    return torch.cat(list(conds))


def _rows(c: Cond, a: int, b: int) -> Cond:
    return {k: v[a:b] for k, v in c.items()} if isinstance(c, dict) else c[a:b]


def combine_denoised(x_out: torch.Tensor, conds_list: list, uncond_out: torch.Tensor, cfg_scale: float) -> torch.Tensor:
    """``uncond + Σ weight·scale·(cond_i − uncond)`` per image (CFG with composable ``AND``)."""
    out = uncond_out.clone()
    for i, conds in enumerate(conds_list):
        for cond_index, weight in conds:
            out[i] += (x_out[cond_index] - uncond_out[i]) * (weight * cfg_scale)
    return out


# --- CFG ------------------------------------------------------------------------------------------------------------


@dataclass
class SamplingInputs:
    """Conditioning and per-run extras for one sampler pass."""

    cond: prompt_parser.MulticondLearnedConditioning
    uncond: list  # list[list[ScheduledPromptConditioning]]
    cfg_scale: float
    empty_chunk: Cond  # one empty-prompt chunk, for the "Pad prompt/negative prompt" setting
    time_ids: torch.Tensor | None = None  # SDXL micro-conditioning, one row per image
    inpaint_cond: torch.Tensor | None = None  # mask + masked-image latents for 9-channel UNets, one row per image
    # on_cfg_denoiser / on_cfg_denoised / on_cfg_after_cfg, or None when nobody listens
    callbacks: SamplingCallbacks | None = None


@dataclass
class CFGOptions:
    """The settings CFGDenoiser reads (A1111 names)."""

    pad_cond_uncond: bool = False
    pad_cond_uncond_v0: bool = False
    batch_cond_uncond: bool = True
    skip_early_cond: float = 0.0
    s_min_uncond: float = 0.0
    s_min_uncond_all: bool = False
    live_preview_content: str = "Prompt"


class CFGDenoiser:
    """Guided denoiser over an inner model; ``timesteps`` mode for DDIM/PLMS/UniPC (ε in, mask blended before)."""

    def __init__(self, inner: Any, inputs: SamplingInputs, *, options: CFGOptions | None = None,
                 timesteps: bool = False, check: Callable[[], None] = lambda: None) -> None:
        self.inner_model = inner
        self.model_wrap = inner
        self.inputs = inputs
        self.options = options or CFGOptions()
        self.timesteps = timesteps
        self.mask_before_denoising = timesteps
        self.check = check
        self.mask: torch.Tensor | None = None  # 1 = keep the original latent (A1111's p.mask)
        self.nmask: torch.Tensor | None = None  # 1 = regenerate
        self.init_latent: torch.Tensor | None = None
        self.step = 0  # denoiser calls so far: the prompt-schedule index
        self.steps = 0
        self.total_steps = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.last_latent: torch.Tensor | None = None
        self.preview_latent: torch.Tensor | None = None
        self.need_last_noise_uncond = False
        self.last_noise_uncond: torch.Tensor | None = None
        self.cond_scale_miltiplier = 1.0  # A1111's spelling; DDIM CFG++ sets 1/12.5
        self.padded_cond_uncond = False
        self.padded_cond_uncond_v0 = False
        self.extra_generation_params: dict[str, Any] = {}
        # Called first at every call with (self, sigma); the refiner switch (engine/refiner.py) may replace
        # inner_model and inputs there.
        self.before_call: Callable[["CFGDenoiser", torch.Tensor], None] | None = None
        self.on_mask_blend: Callable[[MaskBlendArgs], None] | None = None  # scripts' on_mask_blend (soft inpainting)

    @property
    def cond_scale(self) -> float:
        return self.inputs.cfg_scale

    def combine_denoised(self, x_out: torch.Tensor, conds_list: list, uncond: torch.Tensor,
                         cond_scale: float) -> torch.Tensor:
        """A1111's signature (``x_out``: every row the UNet gave, unconditional ones last; ``uncond``: one row per
        image): extensions replace ``CFGDenoiser.combine_denoised`` to change the guidance (CFG rescale)."""
        return combine_denoised(x_out, conds_list, x_out[-uncond.shape[0]:], cond_scale)

    def get_pred_x0(self, x_in: torch.Tensor, x_out: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not self.timesteps:
            return x_out
        a = self.inner_model.alphas_cumprod.to(x_in.device)[sigma.to(x_in.device).to(dtype=torch.long)]
        a = _dims(a, x_in.ndim)
        return (x_in - (1 - a).sqrt() * x_out) / a.sqrt()

    def _blend(self, latent: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        blended = latent * self.nmask + self.init_latent * self.mask
        if self.on_mask_blend is not None:
            args = MaskBlendArgs(latent, self.nmask, self.init_latent, self.mask, blended, denoiser=self, sigma=sigma)
            self.on_mask_blend(args)
            blended = args.blended_latent
        return blended

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.check()
        if self.before_call is not None:
            self.before_call(self, sigma)
        inp, opts = self.inputs, self.options
        conds_list, tensor = prompt_parser.reconstruct_multicond_batch(inp.cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(inp.uncond, self.step)
        if self.mask_before_denoising and self.mask is not None:
            x = self._blend(x, sigma)
        batch = len(conds_list)
        repeats = [len(c) for c in conds_list]
        row_image = [i for i, n in enumerate(repeats) for _ in range(n)] + list(range(batch))
        x_in = x[row_image]
        sigma_in = sigma[row_image]
        image_cond_in = inp.inpaint_cond[row_image].to(x) if inp.inpaint_cond is not None else None
        callbacks = inp.callbacks
        if callbacks is not None and callbacks.has("cfg_denoiser"):
            params = CFGDenoiserParams(x_in, image_cond_in, sigma_in, self.sampling_step, self.sampling_steps,
                                       tensor, uncond, self)
            callbacks.run("cfg_denoiser", params)
            x_in, image_cond_in, sigma_in = params.x, params.image_cond, params.sigma
            tensor, uncond = params.text_cond, params.text_uncond

        skip_uncond = False
        if opts.skip_early_cond != 0 and self.total_steps and self.step / self.total_steps <= opts.skip_early_cond:
            skip_uncond = True
            self.extra_generation_params["Skip Early CFG"] = opts.skip_early_cond
        elif (self.step % 2 or opts.s_min_uncond_all) and opts.s_min_uncond > 0 and sigma[0] < opts.s_min_uncond:
            skip_uncond = True
            self.extra_generation_params["NGMS"] = opts.s_min_uncond
            if opts.s_min_uncond_all:
                self.extra_generation_params["NGMS all steps"] = True
        if skip_uncond:
            x_in, sigma_in, row_image = x_in[:-batch], sigma_in[:-batch], row_image[:-batch]
            if image_cond_in is not None:
                image_cond_in = image_cond_in[:-batch]

        self.padded_cond_uncond = self.padded_cond_uncond_v0 = False
        c_len, u_len = _crossattn(tensor).shape[1], _crossattn(uncond).shape[1]
        if opts.pad_cond_uncond_v0 and c_len != u_len:
            uncond = pad_v0(tensor, uncond)
            self.padded_cond_uncond_v0 = True
        elif opts.pad_cond_uncond and c_len != u_len:
            empty_len = _crossattn(inp.empty_chunk).shape[1]
            repeats_needed = (c_len - u_len) // empty_len
            if repeats_needed < 0:
                tensor = pad_to_tokens(tensor, c_len - repeats_needed * empty_len, inp.empty_chunk)
                self.padded_cond_uncond = True
            elif repeats_needed > 0:
                uncond = pad_to_tokens(uncond, u_len + repeats_needed * empty_len, inp.empty_chunk)
                self.padded_cond_uncond = True

        def run(a: int, b: int, c: Cond) -> torch.Tensor:
            return self.inner_model(x_in[a:b], sigma_in[a:b], self._row_cond(c, row_image[a:b], image_cond_in, a, b))

        n_cond = _crossattn(tensor).shape[0]
        if _crossattn(tensor).shape[1] == _crossattn(uncond).shape[1] or skip_uncond:
            cond_in = tensor if skip_uncond else _cat([tensor, uncond])
            if opts.batch_cond_uncond:
                x_out = run(0, x_in.shape[0], cond_in)
            else:
                x_out = torch.cat([run(a, min(a + batch, x_in.shape[0]), _rows(cond_in, a, min(a + batch, x_in.shape[0])))
                                   for a in range(0, x_in.shape[0], batch)])
        else:
            x_out = torch.zeros_like(x_in)
            chunk = batch * 2 if opts.batch_cond_uncond else batch
            for a in range(0, n_cond, chunk):
                b = min(a + chunk, n_cond)
                x_out[a:b] = run(a, b, _rows(tensor, a, b))
            x_out[-batch:] = run(x_in.shape[0] - batch, x_in.shape[0], uncond)

        firsts = [c[0][0] for c in conds_list]
        if skip_uncond:
            x_out = torch.cat([x_out, x_out[firsts]])
        if callbacks is not None and callbacks.has("cfg_denoised"):
            params = CFGDenoisedParams(x_out, self.sampling_step, self.sampling_steps, self.inner_model)
            callbacks.run("cfg_denoised", params)
            x_out = params.x
        if self.need_last_noise_uncond:
            self.last_noise_uncond = torch.clone(x_out[-batch:])
        scale = 1.0 if skip_uncond else inp.cfg_scale * self.cond_scale_miltiplier
        denoised = self.combine_denoised(x_out, conds_list, x_out[-batch:], scale)
        if not self.mask_before_denoising and self.mask is not None:
            denoised = self._blend(denoised, sigma)

        x_first = x_in[firsts]
        self.last_latent = self.get_pred_x0(x_first, x_out[firsts], sigma)
        if opts.live_preview_content == "Prompt":
            self.preview_latent = self.last_latent
        elif opts.live_preview_content == "Negative prompt":
            self.preview_latent = self.get_pred_x0(x_in[-batch:], x_out[-batch:], sigma)
        else:
            self.preview_latent = self.get_pred_x0(x_first, denoised, sigma)

        if callbacks is not None and callbacks.has("cfg_after_cfg"):
            params = AfterCFGCallbackParams(denoised, self.sampling_step, self.sampling_steps)
            callbacks.run("cfg_after_cfg", params)
            denoised = params.x
        self.step += 1
        return denoised

    def _row_cond(self, c: Cond, rows: list[int], image_cond: torch.Tensor | None, a: int, b: int) -> RowCond:
        inp = self.inputs
        concat = image_cond[a:b] if image_cond is not None else None
        if isinstance(c, dict):
            if "time_ids" in c:  # the SDXL refiner: its aesthetic score differs between cond and uncond rows
                time_ids = c["time_ids"]
            else:
                time_ids = inp.time_ids[rows] if inp.time_ids is not None else None
            return RowCond(c["crossattn"], c.get("pooled"), time_ids, concat)
        return RowCond(c, None, None, concat)
