"""Sampling in σ space, as A1111 v1.10.1 runs it (pure functions, no model or engine state).

* :mod:`.discrete` – the model's discrete noise schedule (σ per training timestep, fractional ``sigma_to_t``).
* :mod:`.schedules` – every A1111 schedule type, "discard penultimate sigma", σ min/max/ρ overrides.
* :mod:`.noise` – the noise sources the samplers draw from (per-image streams, Brownian trees).
* :mod:`.k_samplers` – one function per k-diffusion sampler A1111 offers.
* :mod:`.a1111_samplers` – A1111's own samplers: DDIM, DDIM CFG++, PLMS, UniPC, LCM, Restart.

A sampler function takes ``model(x, sigma_vector) -> denoised`` (or, for the timestep samplers, ``-> eps``), the
start latent, its schedule and a noise source, and returns the final latent. It calls ``callback(i, x, denoised)``
once per step (progress, live preview).
"""
