"""Euler inversion: from a clean latent back to the noise that Euler sampling would turn into it (A1111's
"img2img alternative test"). ``model(x, sigma)`` is the guided denoiser (x0 prediction), ``sigmas`` the
sampling schedule (descending, ending in 0); the steps are walked backwards, from 0 up to σ_max.

Two variants, as A1111 has them:

* plain: at each step the denoiser is asked at the step's upper σ, ``x += (x − D(x, σᵢ)) / σᵢ · (σᵢ − σᵢ₋₁)``,
  and the result is normalised to unit standard deviation;
* sigma adjustment: the denoiser is asked at the lower σ (``σᵢ₋₁``; the first step, from σ = 0, moves nothing)
  and the result is divided by σ_max.
"""
from __future__ import annotations

from typing import Callable

import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def euler_inversion(model: Model, x: torch.Tensor, sigmas: torch.Tensor, *, sigma_adjustment: bool = False,
                    check: Callable[[], None] | None = None) -> torch.Tensor:
    ascending = sigmas.flip(0).to(x.device, torch.float32)
    ones = x.new_ones([x.shape[0]])
    x = x.float()
    for i in range(1, len(ascending)):
        if check is not None:
            check()
        lo, hi = ascending[i - 1], ascending[i]
        if sigma_adjustment:
            if i == 1:
                continue  # at σ = 0 the denoiser returns x itself: the step is zero
            d = (x - model(x, lo * ones)) / lo
        else:
            d = (x - model(x, hi * ones)) / hi
        x = x + d * (hi - lo)
    return x / ascending[-1] if sigma_adjustment else x / x.std()


def blend_noise(found: torch.Tensor, fresh: torch.Tensor, randomness: float) -> torch.Tensor:
    """``(1 − r)·found + r·fresh``, rescaled to keep unit variance for independent unit-variance inputs."""
    r = float(randomness)
    return ((1 - r) * found + r * fresh) / ((r ** 2 + (1 - r) ** 2) ** 0.5)
