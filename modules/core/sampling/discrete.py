"""The model's own discrete noise schedule, seen in σ space (k-diffusion's ``DiscreteSchedule`` facts).

SD1, SD2 and SDXL are trained on 1000 timesteps with betas linear in sqrt space (0.00085 → 0.012). A1111 computes
``alphas_cumprod`` in float64 and keeps it as float32; every σ is ``sqrt((1 - ᾱ) / ᾱ)`` computed from that float32
tensor. A σ maps back to a *fractional* timestep by linear interpolation of the index between the two
neighbouring ``log σ`` (A1111 never rounds it: ``enable_quantization`` is off).
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

ZERO_SNR_LAST_ALPHA_BAR = 4.8973451890853435e-08  # A1111's stand-in for ᾱ = 0 at the last step (zero terminal SNR)


def alphas_cumprod(config: Mapping[str, Any] | None = None) -> torch.Tensor:
    """float32 ``alphas_cumprod`` of a diffusers scheduler config (SD defaults when keys are missing)."""
    config = dict(config or {})
    n = int(config.get("num_train_timesteps") or 1000)
    start = float(config.get("beta_start") or 0.00085)
    end = float(config.get("beta_end") or 0.012)
    kind = config.get("beta_schedule") or "scaled_linear"
    if kind == "scaled_linear":
        betas = torch.linspace(start ** 0.5, end ** 0.5, n, dtype=torch.float64) ** 2
    elif kind == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float64)
    else:
        raise ValueError(f"beta_schedule {kind!r} is not supported (scaled_linear or linear)")
    abar = torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
    if config.get("rescale_betas_zero_snr"):
        abar = rescale_zero_terminal_snr(abar)
    return abar


def rescale_zero_terminal_snr(abar: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(ᾱ) so the last step has zero SNR; the last ᾱ is A1111's tiny constant, not 0."""
    root = abar.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    out = root ** 2
    out[-1] = ZERO_SNR_LAST_ALPHA_BAR
    return out


class DiscreteSchedule:
    """σ of each training timestep (ascending), with σ ↔ fractional-t conversion."""

    def __init__(self, abar: torch.Tensor) -> None:
        self.alphas_cumprod = abar
        self.sigmas = ((1 - abar) / abar) ** 0.5
        self.log_sigmas = self.sigmas.log()

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep: the index interpolated linearly between the neighbouring log σ."""
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        w = ((low - log_sigma) / (low - high)).clamp(0, 1)
        t = (1 - w) * low_idx + w * high_idx
        return t.view(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = t.float()
        low_idx, high_idx, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low_idx] + w * self.log_sigmas[high_idx]
        return log_sigma.exp()

    def get_sigmas(self, n: int | None = None) -> torch.Tensor:
        """``n`` σ evenly spaced in t from the top, then 0 (A1111's "Uniform" and its fallback schedule)."""
        if n is None:
            return _append_zero(self.sigmas.flip(0))
        t = torch.linspace(len(self.sigmas) - 1, 0, n, device=self.sigmas.device)
        return _append_zero(self.t_to_sigma(t))


class LCMSchedule(DiscreteSchedule):
    """LCM's view of the schedule: the 50 timesteps of its original-steps grid (t = 19, 39, …, 999).

    ``sigma_to_t`` snaps to the nearest grid σ and answers the grid's *training* timestep, which is what the UNet
    gets; ``t_to_sigma`` reads such a timestep back (fractional grid positions interpolate in log σ)."""

    ORIGINAL_STEPS = 50

    def __init__(self, abar: torch.Tensor) -> None:
        total = len(abar)
        self.skip_steps = total // self.ORIGINAL_STEPS
        grid = torch.zeros(self.ORIGINAL_STEPS, dtype=torch.float32, device=abar.device)
        for x in range(self.ORIGINAL_STEPS):
            grid[self.ORIGINAL_STEPS - 1 - x] = abar[total - 1 - x * self.skip_steps]
        super().__init__(grid)

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        dists = sigma.log() - self.log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape) * self.skip_steps + (self.skip_steps - 1)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        pos = torch.clamp(((t - (self.skip_steps - 1)) / self.skip_steps).float(), min=0, max=len(self.sigmas) - 1)
        return super().t_to_sigma(pos)

    def get_sigmas(self, n: int | None = None) -> torch.Tensor:
        if n is None:
            return _append_zero(self.sigmas.flip(0))
        start = self.sigma_to_t(self.sigma_max)
        end = self.sigma_to_t(self.sigma_min)
        t = torch.linspace(start, end, n, device=self.sigmas.device)
        return _append_zero(self.t_to_sigma(t))


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])
