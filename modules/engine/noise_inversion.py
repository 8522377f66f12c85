"""The noise an init image came from, found through the Engine's own denoiser (Euler inversion with a prompt,
see :mod:`modules.core.sampling.inversion`): for the img2img alternative test, inside a running generation."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from modules.core import samplers
from modules.core.sampling.discrete import DiscreteSchedule, alphas_cumprod
from modules.core.sampling.inversion import euler_inversion
from modules.models.checkpoint_detect import SDXL_FAMILIES

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.engine.pipeline import Batch, Plan


def find_noise(engine: "Engine", plan: "Plan", batch: "Batch", init_latents: torch.Tensor, *, prompt: str,
               negative_prompt: str, cfg_scale: float, steps: int, sigma_adjustment: bool) -> torch.Tensor:
    """Invert ``init_latents`` over ``steps`` Euler steps of the model's discrete schedule, guided by ``prompt``
    against ``negative_prompt`` at ``cfg_scale``."""
    from modules.engine.denoiser import CFGDenoiser, SigmaDenoiser
    from modules.engine.sampling import SamplerSettings

    model = engine.model
    n = init_latents.shape[0]
    euler = samplers.find_sampler("Euler")
    inverted = replace(batch, cond_prompts=[prompt] * n, negative_prompts=[negative_prompt] * n)
    conds = engine.conditioning(plan, inverted, steps=steps, hires_steps=None, sampler=euler)
    inputs = engine.sampling_inputs(conds, cfg_scale, plan.request.width, plan.request.height, n)
    settings = SamplerSettings.from_options(engine.options.get, eta=None, sdxl=model.family in SDXL_FAMILIES)
    schedule = DiscreteSchedule(alphas_cumprod(model.scheduler_config).to(init_latents.device))
    inner = SigmaDenoiser(model.unet, schedule, model.prediction_type)
    denoiser = CFGDenoiser(inner, inputs, options=settings.cfg, timesteps=False, check=engine.state.check)
    return euler_inversion(denoiser, init_latents, schedule.get_sigmas(steps), sigma_adjustment=sigma_adjustment,
                           check=engine.state.check)
