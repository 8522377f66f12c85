"""Noise sources for the ancestral and SDE steps.

A1111 replaces k-diffusion's ``torch.randn_like`` with the run's per-image generators: every draw is the next
tensor of each image's own stream (seeded with its seed, or seed + ENSD). Any object with ``next() -> Tensor``
(one row per image) is such a stream; :class:`StreamNoise` turns it into k-diffusion's ``noise_sampler(σ, σ')``.

The SDE samplers (DPM++ SDE, 2M SDE, 2M SDE Heun, 3M SDE) use one Brownian tree per image instead, seeded with
the image's seed over [smallest σ > 0, largest σ] of the schedule: :class:`BrownianNoise`.
"""
from __future__ import annotations

import warnings
from typing import Protocol, Sequence

import torch


class NoiseStream(Protocol):
    def next(self) -> torch.Tensor: ...


class StreamNoise:
    """``noise_sampler(sigma, sigma_next)`` that ignores the σ and draws the stream's next tensor."""

    def __init__(self, stream: NoiseStream, like: torch.Tensor) -> None:
        self.stream = stream
        self.like = like

    def __call__(self, sigma: torch.Tensor | None = None, sigma_next: torch.Tensor | None = None) -> torch.Tensor:
        return self.stream.next().to(self.like.device, self.like.dtype)


class BrownianNoise:
    """Brownian-tree increments, one tree per image, normalised to unit variance per step."""

    def __init__(self, x: torch.Tensor, sigmas: torch.Tensor, seeds: Sequence[int]) -> None:
        import torchsde

        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        t0, t1, self.sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        w0 = torch.zeros_like(x[0])
        seeds = list(seeds)
        if len(seeds) != x.shape[0]:
            raise ValueError(f"one Brownian seed per image: {len(seeds)} seeds for a batch of {x.shape[0]}")
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(s)) for s in seeds]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        lo, hi, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        with warnings.catch_warnings():
            # torchsde warns when a query touches the interval's float-rounded ends; A1111 gets the same values
            warnings.simplefilter("ignore", UserWarning)
            w = torch.stack([tree(lo, hi) for tree in self.trees]) * (self.sign * sign)
        return w / (t1 - t0).abs().sqrt()
