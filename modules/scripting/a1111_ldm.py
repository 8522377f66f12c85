"""The few names of A1111's ``ldm`` package (Stability's latent-diffusion code) that extensions import at their top
level although they only use the k-diffusion path: the DDIM schedule helpers and ``DDIMSampler`` (CFG rescale
saves its methods in case it patches them). This app's DDIM runs in σ space in the Engine
(``sampler_name="DDIM"``); there is no ldm model to step, so ``p_sample_ddim`` says so when called."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def make_ddim_timesteps(ddim_discr_method: str, num_ddim_timesteps: int, num_ddpm_timesteps: int,
                        verbose: bool = True) -> np.ndarray:
    """The DDPM timesteps a DDIM run of ``num_ddim_timesteps`` visits (1-based, as ldm's alphas are indexed)."""
    if ddim_discr_method == "uniform":
        stride = num_ddpm_timesteps // num_ddim_timesteps
        steps = np.asarray(list(range(0, num_ddpm_timesteps, stride)))
    elif ddim_discr_method == "quad":
        steps = (np.linspace(0, np.sqrt(num_ddpm_timesteps * 0.8), num_ddim_timesteps) ** 2).astype(int)
    else:
        raise NotImplementedError(f"there is no ddim discretization method called {ddim_discr_method!r}")
    return steps + 1


def make_ddim_sampling_parameters(alphacums: Any, ddim_timesteps: Any, eta: float, verbose: bool = True):
    """(σ, ᾱ, ᾱ_prev) at the DDIM timesteps: σ_t = η·√((1−ᾱ_prev)/(1−ᾱ)·(1−ᾱ/ᾱ_prev)) (DDIM paper, eq. 16)."""
    alphacums = np.asarray(alphacums.cpu() if isinstance(alphacums, torch.Tensor) else alphacums, dtype=np.float64)
    alphas = alphacums[ddim_timesteps]
    alphas_prev = np.asarray([alphacums[0]] + alphacums[ddim_timesteps[:-1]].tolist())
    sigmas = eta * np.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    return sigmas, alphas, alphas_prev


def noise_like(shape: tuple[int, ...], device: Any, repeat: bool = False) -> torch.Tensor:
    if repeat:
        return torch.randn((1, *shape[1:]), device=device).repeat(shape[0], *((1,) * (len(shape) - 1)))
    return torch.randn(shape, device=device)


class DDIMSampler:
    """ldm's ``DDIMSampler``: the schedule it makes is real (over the model's ᾱ); stepping an ldm model is not
    something this app has."""

    def __init__(self, model: Any, schedule: str = "linear", **kwargs: Any) -> None:
        self.model = model
        self.schedule = schedule
        self.ddpm_num_timesteps = 1000

    def make_schedule(self, ddim_num_steps: int, ddim_discretize: str = "uniform", ddim_eta: float = 0.0,
                      verbose: bool = True) -> None:
        from modules.core.sampling.discrete import alphas_cumprod

        abar = alphas_cumprod(getattr(self.model, "scheduler_config", None))
        self.ddpm_num_timesteps = len(abar)
        self.ddim_timesteps = make_ddim_timesteps(ddim_discretize, ddim_num_steps, len(abar), verbose)
        self.ddim_timesteps = np.clip(self.ddim_timesteps, 0, len(abar) - 1)
        sigmas, alphas, alphas_prev = make_ddim_sampling_parameters(abar, self.ddim_timesteps, ddim_eta, verbose)
        self.ddim_sigmas = torch.tensor(sigmas)
        self.ddim_alphas = torch.tensor(alphas)
        self.ddim_alphas_prev = torch.tensor(alphas_prev)
        self.ddim_sqrt_one_minus_alphas = torch.sqrt(1.0 - self.ddim_alphas)

    def p_sample_ddim(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ldm's DDIM sampler steps an ldm model, which this app does not have; DDIM runs in "
                                  "the Engine (sampler_name='DDIM', callbacks on_cfg_denoiser/on_cfg_denoised)")

    def sample(self, *args: Any, **kwargs: Any) -> Any:
        return self.p_sample_ddim(*args, **kwargs)
