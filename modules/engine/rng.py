"""Initial noise and per-image random generators, with A1111's seed semantics.

Each image owns a generator seeded with its own seed, so image i of a batch is the same
picture as that seed generated alone, and ancestral samplers draw their later noise from
the same per-image generator (a list of generators is what diffusers schedulers accept).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

RNG_SOURCES = ("GPU", "CPU")
MAX_SEED = 4294967294


def fix_seed(seed: int | None) -> int:
    """-1 / None / "" mean a new random seed, as in A1111."""
    if seed is None or seed == "" or int(seed) == -1:
        return int(random.randrange(MAX_SEED))
    return int(seed)


def generator_device(source: str, device: torch.device) -> torch.device:
    if source not in RNG_SOURCES:
        raise ValueError(f"RNG source {source!r} is not supported here; choose one of {', '.join(RNG_SOURCES)}")
    # "CPU" makes a seed give the same picture on any machine; "GPU" draws on the compute device.
    return torch.device("cpu") if source == "CPU" else torch.device(device)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def randn(seed: int, shape: Sequence[int], gen_device: torch.device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=make_generator(seed, gen_device), device=gen_device)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (variation seeds)."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * (1 - val) + high * val
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def paste_centered(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Put `source` (C,h,w) in the middle of `target` (C,H,W), cropping whichever is larger."""
    out = target.clone()
    dy = (target.shape[1] - source.shape[1]) // 2
    dx = (target.shape[2] - source.shape[2]) // 2
    h = min(target.shape[1], source.shape[1])
    w = min(target.shape[2], source.shape[2])
    ty, sy = max(dy, 0), max(-dy, 0)
    tx, sx = max(dx, 0), max(-dx, 0)
    out[:, ty:ty + h, tx:tx + w] = source[:, sy:sy + h, sx:sx + w]
    return out


@dataclass
class ImageRNG:
    """Noise for one batch: a generator per image, first() for the initial latent noise."""

    shape: tuple[int, ...]  # (C, H/8, W/8) of one image
    seeds: list[int]
    subseeds: list[int]
    subseed_strength: float = 0.0
    seed_resize_from_h: int = 0
    seed_resize_from_w: int = 0
    source: str = "GPU"
    device: torch.device = torch.device("cpu")
    eta_noise_seed_delta: int = 0

    def __post_init__(self) -> None:
        self.gen_device = generator_device(self.source, self.device)
        self.generators = [make_generator(s, self.gen_device) for s in self.seeds]

    def _noise_shape(self) -> tuple[int, ...]:
        if self.seed_resize_from_h > 0 and self.seed_resize_from_w > 0:
            return (self.shape[0], self.seed_resize_from_h // 8, self.seed_resize_from_w // 8)
        return tuple(self.shape)

    def first(self) -> torch.Tensor:
        noise_shape = self._noise_shape()
        xs = []
        for i, (seed, gen) in enumerate(zip(self.seeds, self.generators)):
            subnoise = None
            if self.subseed_strength != 0 and i < len(self.subseeds):
                subnoise = randn(self.subseeds[i], noise_shape, self.gen_device)
            resized = noise_shape != tuple(self.shape)
            # A1111: with "resize seed from", the old-size noise comes from a fresh generator of the seed and the
            # image's own generator draws the full-size noise it is pasted into (its first draw either way)
            noise = (randn(seed, noise_shape, self.gen_device) if resized
                     else torch.randn(noise_shape, generator=gen, device=self.gen_device))
            if subnoise is not None:
                noise = slerp(self.subseed_strength, noise, subnoise)
            if resized:
                noise = paste_centered(torch.randn(self.shape, generator=gen, device=self.gen_device), noise)
            xs.append(noise)
        if self.eta_noise_seed_delta > 0:
            # A1111 (NovelAI compatibility): later sampler noise comes from seed + ENSD.
            self.generators = [make_generator(s + self.eta_noise_seed_delta, self.gen_device) for s in self.seeds]
        return torch.stack(xs).to(self.device)

    def next(self) -> torch.Tensor:
        xs = [torch.randn(self.shape, generator=g, device=self.gen_device) for g in self.generators]
        return torch.stack(xs).to(self.device)
