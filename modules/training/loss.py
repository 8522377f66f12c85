"""The diffusion training loss of one batch, as the reference trains embeddings and hypernetworks: a uniform
timestep, the model's noise schedule, plain mean squared error on the model's prediction target (the noise for
epsilon models, the velocity for v-prediction ones), optionally weighted per latent pixel."""
from __future__ import annotations

import torch

__all__ = ["alphas_cumprod_of", "diffusion_loss"]


def alphas_cumprod_of(scheduler_config: dict) -> torch.Tensor:
    """The training noise schedule (float64) of a model, from its scheduler config."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config).alphas_cumprod.to(torch.float64)


def diffusion_loss(unet: torch.nn.Module, latents: torch.Tensor, cond: torch.Tensor, alphas_cumprod: torch.Tensor,
                   prediction_type: str, gen: torch.Generator, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Loss of ``unet`` on ``latents`` [B, C, h, w] (scaled) under ``cond`` [B, T, width]. Timesteps and noise
    come from the CPU generator ``gen``: the same on every device, and replayable."""
    param = next(unet.parameters())
    device, dtype = param.device, param.dtype
    b = latents.shape[0]
    t = torch.randint(0, alphas_cumprod.numel(), (b,), generator=gen)
    noise = torch.randn(latents.shape, generator=gen)
    a = alphas_cumprod[t].float().view(-1, 1, 1, 1)
    x0 = latents.float()
    noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
    pred = unet(noisy.to(device, dtype), t.to(device), encoder_hidden_states=cond.to(device, dtype)).sample.float()
    if prediction_type == "v_prediction":
        target = a.sqrt() * noise - (1 - a).sqrt() * x0
    else:
        target = noise
    err = (pred - target.to(device)) ** 2
    if weights is not None:
        err = err * weights.to(device)
    return err.mean()
