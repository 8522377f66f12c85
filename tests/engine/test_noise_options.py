"""A1111's "SGM noise multiplier" and img2img "Extra noise" settings, against k-diffusion run as A1111 runs it."""
from __future__ import annotations

import pytest
import torch

from modules.core import samplers as names
from modules.engine.hooks import ExtraNoiseParams
from modules.engine.sampling import SamplerSettings
from tests.engine.test_samplers_a1111 import (SEEDS, SHAPE, TOL, _rng, a1111_timesteps, ks, make_sampler,  # noqa: F401
                                              one_thread, ref_sigmas, world)


class Listening:
    """The script layer's callbacks, reduced to one ``on_extra_noise`` listener."""

    def __init__(self, fn):
        self.fn = fn
        self.seen: list[ExtraNoiseParams] = []

        self.first_x = None  # what the first UNet call got (conditional rows)

    def has(self, name):
        return name in ("extra_noise", "cfg_denoiser")

    def run(self, name, params):
        if name == "cfg_denoiser":
            if self.first_x is None:
                self.first_x = params.x[:2].clone()
            return
        self.seen.append(params)
        self.fn(params)


def test_sgm_noise_multiplier_starts_at_noise_times_sqrt_sigma_squared_plus_one(world):
    sampler = names.find_sampler("Euler")
    sigmas = ref_sigmas(world, sampler, "automatic", 10)
    with torch.no_grad():
        rng = _rng()
        noise = rng.first()
        ref = ks.sample_euler(world["ref_cfg"], noise * torch.sqrt(1.0 + sigmas[0] ** 2), sigmas, disable=True)
        rng2 = _rng()
        s = make_sampler(world, sampler, "automatic", rng2, SamplerSettings(sgm_noise_multiplier=True))
        mine = s.sample(rng2.first(), 10)
        plain = make_sampler(world, sampler, "automatic", _rng()).sample(_rng().first(), 10)
    assert (mine - ref).abs().max().item() <= TOL
    assert (mine - plain).abs().max().item() > 1e-3
    assert s.extra_generation_params["SGM noise multiplier"] is True


def test_extra_noise_adds_the_noise_again_and_a_callback_may_replace_it(world):
    sampler = names.find_sampler("Euler")
    steps, denoising, amount = 10, 0.6, 0.25
    init = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(5))
    replacement = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(9))
    full = ref_sigmas(world, sampler, "automatic", steps)
    sched = full[steps - int(denoising * steps) - 1:]
    with torch.no_grad():
        noise = _rng().first()
        xi = init + noise * sched[0] + replacement * amount
        ref = ks.sample_euler(world["ref_cfg"], xi, sched, disable=True)
        rng = _rng()
        s = make_sampler(world, sampler, "automatic", rng, SamplerSettings(img2img_extra_noise=amount))
        listener = Listening(lambda p: setattr(p, "noise", replacement))
        s.model_wrap_cfg.inputs.callbacks = listener
        mine = s.sample_img2img(init, rng.first(), steps, denoising)
    assert (mine - ref).abs().max().item() <= TOL
    assert s.extra_generation_params["Extra noise"] == amount
    (seen,) = listener.seen
    assert torch.equal(seen.x, init) and torch.allclose(seen.xi, init + noise * sched[0])


def test_extra_noise_on_ddim_is_scaled_by_sqrt_alpha(world):
    """The timestep samplers noise the init as √ᾱ·x + √(1−ᾱ)·noise; the extra noise is √ᾱ·amount·noise."""
    sampler = names.find_sampler("DDIM")
    steps, denoising, amount = 10, 0.5, 0.5
    init = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        seen = {}
        for key, value in (("plain", 0.0), ("extra", amount)):
            rng = _rng()
            s = make_sampler(world, sampler, None, rng, SamplerSettings(img2img_extra_noise=value))
            listener = Listening(lambda p: None)
            s.model_wrap_cfg.inputs.callbacks = listener
            s.sample_img2img(init, rng.first(), steps, denoising)
            seen[key] = listener.first_x
    t_enc = int(denoising * steps)
    abar = world["abar"][a1111_timesteps(steps)[t_enc]]
    noise = _rng().first()
    assert torch.allclose(seen["extra"] - seen["plain"], noise * amount * abar.sqrt(), atol=1e-5)
