"""A cheap latent -> RGB approximation for live previews.

Rather than shipping per-model coefficient tables, the linear map from the 4 latent channels
to RGB is fitted once per loaded VAE by least squares on one small decode: it adapts to any
VAE (tiny test models included) and costs a fraction of a second at load time.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


@torch.no_grad()
def fit_latent_to_rgb(vae: torch.nn.Module, latent_channels: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Return a (latent_channels + 1, 3) matrix: rgb = [latent, 1] @ M, rgb in [-1, 1]."""
    param = next(vae.parameters())
    gen = torch.Generator(device="cpu").manual_seed(seed)
    latents = torch.randn((1, latent_channels, size, size), generator=gen).to(param.device, param.dtype)
    image = vae.decode(latents).sample.float().cpu()
    factor = image.shape[-1] // size
    pooled = torch.nn.functional.avg_pool2d(image, factor)  # (1, 3, size, size)
    x = latents.float().cpu().reshape(latent_channels, -1).T  # (n, C)
    x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    y = pooled.reshape(3, -1).T  # (n, 3)
    return torch.linalg.lstsq(x, y).solution


def latent_to_rgb_image(latent: torch.Tensor, matrix: torch.Tensor) -> Image.Image:
    """One latent (C, h, w) to a small PIL preview."""
    c, h, w = latent.shape
    x = latent.detach().float().cpu().reshape(c, -1).T
    x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    rgb = (x @ matrix).T.reshape(3, h, w)
    arr = ((rgb.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(arr)).resize((w * 8, h * 8), Image.Resampling.NEAREST)
