"""One sampler pass in σ space, run the way A1111's ``KDiffusionSampler`` / ``CompVisSampler`` run it.

:class:`Sampler` is built for one pass (txt2img, img2img, or the hires-fix pass) from the sampler/schedule
names, the model's UNet and schedule, the CFG denoiser and the run's noise stream. ``sample(noise)`` starts at
``noise · σ_max`` (timestep samplers: the plain noise); ``sample_img2img(x, noise, ...)`` starts at
``x + noise · σ_start`` on the last ``t_enc + 1`` steps. Interrupt and Skip end the pass early and return the
last conditional x₀ prediction (``last_latent``), which the pipeline decodes as A1111 does.

The attribute names (``model_wrap_cfg``, ``model_wrap``, ``config``, ``funcname``, ``last_latent``, ``eta``) are
A1111's, so that a script reading ``p.sampler`` finds what it expects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from modules.core import samplers as names
from modules.core.sampling import a1111_samplers as a1111
from modules.core.sampling import dpm_solver
from modules.core.sampling import k_samplers as k
from modules.core.sampling.discrete import DiscreteSchedule
from modules.core.sampling.noise import BrownianNoise, StreamNoise
from modules.core.sampling.schedules import ScheduleSettings, build_sigmas, timestep_sampler_timesteps
from modules.engine.denoiser import (CFGDenoiser, CFGOptions, LCMDenoiser, SamplingInputs, SigmaDenoiser,  # noqa: F401
                                     TimestepDenoiser, combine_denoised, pad_to_tokens)
from modules.engine.job_state import GenerationInterrupted
from modules.engine.hooks import ExtraNoiseParams

CHURN = ("s_churn", "s_tmin", "s_tmax", "s_noise")

# name -> (function, extra parameters A1111 passes from the settings, fixed keyword arguments)
K_SAMPLERS: dict[str, tuple[Callable, tuple[str, ...], dict[str, Any]]] = {
    "DPM++ 2M": (k.dpmpp_2m, (), {}),
    "DPM++ SDE": (k.dpmpp_sde, ("eta", "s_noise"), {}),
    "DPM++ 2M SDE": (k.dpmpp_2m_sde, ("eta", "s_noise"), {}),
    "DPM++ 2M SDE Heun": (k.dpmpp_2m_sde, ("eta", "s_noise"), {"solver_type": "heun"}),
    "DPM++ 2S a": (k.dpmpp_2s_ancestral, ("eta", "s_noise"), {}),
    "DPM++ 3M SDE": (k.dpmpp_3m_sde, ("eta", "s_noise"), {}),
    "Euler a": (k.euler_ancestral, ("eta",), {}),
    "Euler": (k.euler, CHURN, {}),
    "LMS": (k.lms, (), {}),
    "Heun": (k.heun, CHURN, {}),
    "DPM2": (k.dpm_2, CHURN, {}),
    "DPM2 a": (k.dpm_2_ancestral, ("eta", "s_noise"), {}),
    "DPM fast": (dpm_solver.dpm_fast, ("eta", "s_noise"), {}),
    "DPM adaptive": (dpm_solver.dpm_adaptive, ("eta",), {}),
    "Restart": (a1111.restart, (), {}),
    "LCM": (a1111.lcm, (), {}),
}
TIMESTEP_SAMPLERS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "DDIM": (a1111.ddim, ("eta",)),
    "DDIM CFG++": (a1111.ddim, ("eta",)),
    "PLMS": (a1111.plms, ()),
    "UniPC": (a1111.unipc, ()),
}


@dataclass
class SamplerSettings:
    """Everything a pass reads from the settings and the request (defaults are A1111's)."""

    eta: float | None = None  # the request's eta: overrides both settings below
    eta_ancestral: float = 1.0  # "Eta"
    eta_ddim: float = 0.0  # "Eta DDIM"
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = 0.0  # 0 means ∞
    s_noise: float = 1.0
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    cfg: CFGOptions = field(default_factory=CFGOptions)
    img2img_fix_steps: bool = False
    sgm_noise_multiplier: bool = False  # txt2img starts at noise·sqrt(σ₀² + 1), as SDXL's reference code does
    img2img_extra_noise: float = 0.0  # img2img / hires fix: this much of the noise again on the start latent
    uni_pc_variant: str = "bh1"
    uni_pc_skip_type: str = "time_uniform"
    uni_pc_order: int = 3
    uni_pc_lower_order_final: bool = True

    @classmethod
    def from_options(cls, get: Callable[[str], Any], *, eta: float | None = None, sdxl: bool = False) -> "SamplerSettings":
        def val(key: str, default: Any) -> Any:
            value = get(key)
            return default if value is None else value

        return cls(
            eta=eta, eta_ancestral=float(val("eta_ancestral", 1.0)), eta_ddim=float(val("eta_ddim", 0.0)),
            s_churn=float(val("s_churn", 0.0)), s_tmin=float(val("s_tmin", 0.0)), s_tmax=float(val("s_tmax", 0.0)),
            s_noise=float(val("s_noise", 1.0)), schedule=ScheduleSettings.from_options(get, sdxl=sdxl),
            cfg=CFGOptions(
                pad_cond_uncond=bool(val("pad_cond_uncond", False)),
                pad_cond_uncond_v0=bool(val("pad_cond_uncond_v0", False)),
                batch_cond_uncond=bool(val("batch_cond_uncond", True)),
                skip_early_cond=float(val("skip_early_cond", 0.0)), s_min_uncond=float(val("s_min_uncond", 0.0)),
                s_min_uncond_all=bool(val("s_min_uncond_all", False)),
                live_preview_content=str(val("live_preview_content", "Prompt"))),
            img2img_fix_steps=bool(val("img2img_fix_steps", False)),
            sgm_noise_multiplier=bool(val("sgm_noise_multiplier", False)),
            img2img_extra_noise=float(val("img2img_extra_noise", 0.0)),
            uni_pc_variant=str(val("uni_pc_variant", "bh1")), uni_pc_skip_type=str(val("uni_pc_skip_type", "time_uniform")),
            uni_pc_order=int(val("uni_pc_order", 3)), uni_pc_lower_order_final=bool(val("uni_pc_lower_order_final", True)))


def img2img_steps(steps: int, denoising: float, fix_steps: bool) -> tuple[int, int]:
    """(schedule length, t_enc): A1111 runs the last ``t_enc + 1`` entries of a ``steps``-long schedule, or with
    "do exactly the amount of steps" (and always for hires fix) ``steps`` entries of a ``steps / denoising`` one."""
    if fix_steps:
        total = int(steps / min(denoising, 0.999)) if denoising > 0 else 0
        return max(total, 1), max(min(steps - 1, total - 1), 0)
    return steps, int(min(denoising, 0.999) * steps)


def make_inner(sampler: names.SamplerInfo, unet: torch.nn.Module, abar: torch.Tensor, prediction_type: str) -> Any:
    """The inner model a sampler family uses."""
    if sampler.name == "LCM":
        return LCMDenoiser(unet, abar)
    if sampler.name in TIMESTEP_SAMPLERS:
        return TimestepDenoiser(unet, abar, prediction_type)
    return SigmaDenoiser(unet, DiscreteSchedule(abar), prediction_type)


class Sampler:
    """One pass of one A1111 sampler (A1111's ``KDiffusionSampler`` / ``CompVisSampler`` shape)."""

    def __init__(self, sampler: names.SamplerInfo, schedule: names.ScheduleInfo | None, cfg: CFGDenoiser,
                 settings: SamplerSettings, *, noise_stream: Any, seeds: Sequence[int],
                 on_step: Callable[[int, int, torch.Tensor | None], None] | None = None) -> None:
        self.config = sampler
        self.schedule = schedule
        self.funcname = sampler.name
        self.model_wrap_cfg = cfg
        self.model_wrap = cfg.inner_model
        self.settings = settings
        self.noise_stream = noise_stream
        self.seeds = list(seeds)
        self.on_step = on_step
        self.extra_generation_params: dict[str, Any] = {}
        self.timestep_family = sampler.name in TIMESTEP_SAMPLERS
        default_eta = 0.0 if self.timestep_family else 1.0
        setting_eta = settings.eta_ddim if self.timestep_family else settings.eta_ancestral
        self.eta = settings.eta if settings.eta is not None else setting_eta
        self.eta_default = default_eta
        self.stopped_early = False

    @property
    def last_latent(self) -> torch.Tensor | None:
        return self.model_wrap_cfg.last_latent

    # --- extra parameters (A1111's ``initialize``) --------------------------------------------------------------------
    def _extra_params(self, accepted: tuple[str, ...]) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {}
        if "eta" in accepted:
            out["eta"] = self.eta
            if self.eta != self.eta_default:
                self.extra_generation_params["Eta DDIM" if self.timestep_family else "Eta"] = self.eta
        if "s_churn" in accepted and s.s_churn != 0.0:
            out["s_churn"] = s.s_churn
            self.extra_generation_params["Sigma churn"] = s.s_churn
        if "s_tmin" in accepted and s.s_tmin != 0.0:
            out["s_tmin"] = s.s_tmin
            self.extra_generation_params["Sigma tmin"] = s.s_tmin
        if "s_tmax" in accepted and (s.s_tmax or math.inf) != math.inf:
            out["s_tmax"] = s.s_tmax
            self.extra_generation_params["Sigma tmax"] = s.s_tmax
        if "s_noise" in accepted and s.s_noise != 1.0:
            out["s_noise"] = s.s_noise
            self.extra_generation_params["Sigma noise"] = s.s_noise
        return out

    def get_sigmas(self, steps: int) -> torch.Tensor:
        sigmas, params = build_sigmas(self.config, self.schedule, steps, self.model_wrap.schedule, self.settings.schedule)
        self.extra_generation_params.update(params)
        return sigmas

    def get_timesteps(self, steps: int) -> torch.Tensor:
        ts, params = timestep_sampler_timesteps(self.config, steps, self.settings.schedule)
        self.extra_generation_params.update(params)
        return ts

    def _extra_noise(self, x: torch.Tensor, noise: torch.Tensor, xi: torch.Tensor,
                     scale: torch.Tensor | float = 1.0) -> torch.Tensor:
        """A1111's "Extra noise" for img2img: ``on_extra_noise`` may replace the noise, then ``xi`` gets it again times
        the setting (times √ᾱ on the timestep samplers' scale)."""
        amount = self.settings.img2img_extra_noise
        if amount <= 0:
            return xi
        self.extra_generation_params["Extra noise"] = amount
        callbacks = self.model_wrap_cfg.inputs.callbacks
        if callbacks is not None and callbacks.has("extra_noise"):
            params = ExtraNoiseParams(noise, x, xi)
            callbacks.run("extra_noise", params)
            noise = params.noise
        return xi + noise * amount * scale

    # --- running ------------------------------------------------------------------------------------------------------
    def _launch(self, total: int, func: Callable[[], torch.Tensor], fallback: torch.Tensor) -> torch.Tensor:
        cfg = self.model_wrap_cfg
        cfg.sampling_step, cfg.sampling_steps = 0, total
        cfg.steps = total
        cfg.total_steps = total * 2 if self.config.second_order else total
        cfg.last_latent = fallback
        try:
            return func()
        except GenerationInterrupted:
            self.stopped_early = True
            return cfg.last_latent
        finally:  # A1111 names the padding its last denoiser call used
            if cfg.padded_cond_uncond:
                self.extra_generation_params["Pad conds"] = True
            if cfg.padded_cond_uncond_v0:
                self.extra_generation_params["Pad conds v0"] = True

    def _callback(self, total: int) -> Callable[[dict], None]:
        cfg = self.model_wrap_cfg

        def callback(d: dict) -> None:
            cfg.sampling_step = int(d["i"])
            if self.on_step is not None:
                self.on_step(min(int(d["i"]) + 1, total), total, cfg.preview_latent)

        return callback

    def _k_call(self, x: torch.Tensor, sigmas: torch.Tensor, full_sigmas: torch.Tensor, steps: int,
                img2img: bool, total: int) -> Callable[[], torch.Tensor]:
        func, accepted, fixed = K_SAMPLERS[self.config.name]
        kwargs: dict[str, Any] = {**self._extra_params(accepted), **fixed}
        if self.config.brownian_noise:
            noise = BrownianNoise(x, full_sigmas, self.seeds)
        else:
            noise = StreamNoise(self.noise_stream, x)
        model = self.model_wrap_cfg
        callback = self._callback(total)
        if self.config.name in ("DPM fast", "DPM adaptive"):
            if img2img:
                lo, hi = sigmas[-2], sigmas[0]
            else:
                lo, hi = self.model_wrap.schedule.sigmas[0].item(), self.model_wrap.schedule.sigmas[-1].item()
            if self.config.name == "DPM fast":
                n = len(sigmas) - 1 if img2img else steps
                return lambda: func(model, x, lo, hi, n, noise, callback, **kwargs)
            return lambda: func(model, x, lo, hi, noise, callback, **kwargs)
        return lambda: func(model, x, sigmas, noise, callback, **kwargs)

    def _timestep_call(self, x: torch.Tensor, timesteps: torch.Tensor, img2img: bool, total: int
                       ) -> Callable[[], torch.Tensor]:
        func, accepted = TIMESTEP_SAMPLERS[self.config.name]
        kwargs = self._extra_params(accepted)
        cfg = self.model_wrap_cfg
        abar = self.model_wrap.alphas_cumprod.to(x.device)
        noise = StreamNoise(self.noise_stream, x)
        callback = self._callback(total)
        s = self.settings
        if self.config.name == "DDIM CFG++":
            cfg.cond_scale_miltiplier = 1 / 12.5
            cfg.need_last_noise_uncond = True
            kwargs["uncond_eps"] = lambda: cfg.last_noise_uncond
        if self.config.name == "UniPC":
            kwargs.update(is_img2img=img2img, variant=s.uni_pc_variant, skip_type=s.uni_pc_skip_type,
                          order=s.uni_pc_order, lower_order_final=s.uni_pc_lower_order_final)
        return lambda: func(cfg, x, timesteps.to(x.device), abar, noise, callback, **kwargs)

    def sample(self, noise: torch.Tensor, steps: int) -> torch.Tensor:
        """txt2img: sample from pure noise."""
        if self.timestep_family:
            timesteps = self.get_timesteps(steps)
            return self._launch(steps, self._timestep_call(noise, timesteps, False, steps), noise)
        sigmas = self.get_sigmas(steps)
        if self.settings.sgm_noise_multiplier:
            self.extra_generation_params["SGM noise multiplier"] = True
            x = noise * torch.sqrt(1.0 + sigmas[0] ** 2.0).to(noise.device)
        else:
            x = noise * sigmas[0].to(noise.device)
        return self._launch(steps, self._k_call(x, sigmas.to(noise.device), sigmas, steps, False, steps), x)

    def sample_img2img(self, x: torch.Tensor, noise: torch.Tensor, steps: int, denoising: float, *,
                       fix_steps: bool | None = None) -> torch.Tensor:
        """img2img / hires fix: noise ``x`` to the start σ of the last ``t_enc + 1`` steps and sample from there."""
        fix = self.settings.img2img_fix_steps if fix_steps is None else fix_steps
        total_steps, t_enc = img2img_steps(steps, denoising, fix)
        cfg = self.model_wrap_cfg
        cfg.init_latent = x
        if self.timestep_family:
            timesteps = self.get_timesteps(total_steps)
            t_enc = min(t_enc, len(timesteps) - 1)
            sched = timesteps[:t_enc]
            abar = self.model_wrap.alphas_cumprod.to(x.device)
            a = abar[timesteps[t_enc]]
            xi = self._extra_noise(x, noise, x * torch.sqrt(a) + noise * torch.sqrt(1 - a), scale=torch.sqrt(a))
            if len(sched) == 0 and self.config.name == "UniPC":
                return xi  # no step to run (A1111's UniPC would fail here)
            return self._launch(t_enc + 1, self._timestep_call(xi, sched, True, t_enc + 1), x)
        sigmas = self.get_sigmas(total_steps)
        sched = sigmas[total_steps - t_enc - 1:]
        xi = self._extra_noise(x, noise, x + noise * sched[0].to(x.device))
        return self._launch(t_enc + 1, self._k_call(xi, sched.to(x.device), sigmas, steps, True, t_enc + 1), x)
