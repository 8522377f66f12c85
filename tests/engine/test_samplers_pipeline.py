"""End to end on the demo model: the pipeline's pixels are A1111's algorithm run by hand.

The reference takes the engine's own text conditioning (not under test here), then does what A1111 does:
k-diffusion's ``CompVisDenoiser`` over the UNet, CFG on the denoised predictions, k-diffusion's sampler with the
per-image noise streams (Brownian trees for the SDE samplers), the VAE decode of each image and the truncating
conversion to 8 bits. Pixels must agree to 1/255 (floating-point noise).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modules.core import prompt_parser
from modules.core import samplers as names
from modules.core.request import GenerationRequest
from modules.core.sampling.discrete import alphas_cumprod
from modules.engine.pipeline import Batch, Plan
from modules.engine.rng import ImageRNG
from tests import kdiffusion_ref
from tests.engine.test_samplers_a1111 import RefLDM, ref_sigmas

ks, kext = kdiffusion_ref.load()
# torchsde warns when a Brownian query touches the float-rounded interval ends; A1111 gets the same warning.
pytestmark = pytest.mark.filterwarnings("ignore:Should have:UserWarning")
PROMPT, NEGATIVE = "a red circle on a blue background", "blurry"
SEEDS = [7, 8]
STEPS = 6
CFG = 7.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from tools.demo_model import evaluate

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    engine = evaluate.build_engine(None, tmp_path_factory.mktemp("demo-samplers"))
    engine.options.set("show_progressbar", False)
    yield engine
    torch.set_num_threads(before)


def _reference_cfg(engine, sampler_name: str, schedule: str):
    """(sampler, schedule, k-diffusion's CompVisDenoiser over the engine's UNet, A1111's CFG over it) for the
    batch's prompts, with the engine's own conditioning (what is compared is the sampling)."""
    model = engine.model
    req = GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, width=64, height=64)
    sampler, sched = names.resolve_sampler(sampler_name, schedule)
    plan = Plan(request=req, sampler=sampler, schedule=sched, schedule_label=sched.label, clip_skip=1,
                all_prompts=[PROMPT] * 2, all_negative_prompts=[NEGATIVE] * 2, cond_prompts=[PROMPT] * 2,
                all_seeds=SEEDS, all_subseeds=SEEDS, seed=SEEDS[0], subseed=SEEDS[0])
    batch = Batch(0, [PROMPT] * 2, [NEGATIVE] * 2, SEEDS, SEEDS, cond_prompts=[PROMPT] * 2)
    c, uc, _ = engine.conditioning(plan, batch, steps=STEPS, hires_steps=None, sampler=sampler)
    _, cond = prompt_parser.reconstruct_multicond_batch(c, 0)
    uncond = prompt_parser.reconstruct_cond_batch(uc, 0)
    inner = kext.CompVisDenoiser(RefLDM(model.unet, alphas_cumprod(model.scheduler_config)))

    def cfg(x, sigma, **_):
        out = inner(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([cond, uncond]))
        return out[2:].clone() + (out[:2] - out[2:]) * (1.0 * CFG)

    return sampler, sched, inner, cfg


def _decoded(vae, z: torch.Tensor) -> np.ndarray:
    """A1111's pixels: one image at a time, clamped, truncated to 8 bits."""
    pics = torch.cat([vae.decode(1.0 / vae.config.scaling_factor * z[i:i + 1]).sample for i in range(len(z))])
    pics = torch.clamp((pics + 1.0) / 2.0, min=0.0, max=1.0)
    return (255.0 * np.moveaxis(pics.numpy(), 1, 3)).astype(np.uint8)


def _reference(engine, monkeypatch, sampler_name: str, schedule: str) -> np.ndarray:
    sampler, sched, inner, cfg = _reference_cfg(engine, sampler_name, schedule)
    world = {"ref_inner": inner}
    sigmas = ref_sigmas(world, sampler, "automatic" if sched.name == "automatic" else sched.name, STEPS)
    rng = ImageRNG(shape=(4, 8, 8), seeds=SEEDS, subseeds=SEEDS, source="CPU")
    x = rng.first() * sigmas[0]
    monkeypatch.setattr(ks, "torch", kdiffusion_ref.TorchHijack(rng))
    fn = getattr(ks, {"Euler a": "sample_euler_ancestral", "DPM++ 2M SDE": "sample_dpmpp_2m_sde",
                      "DPM2": "sample_dpm_2", "DPM++ 2M": "sample_dpmpp_2m"}[sampler_name])
    kwargs = {}
    if sampler.brownian_noise:
        kwargs["noise_sampler"] = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=SEEDS)
    with torch.no_grad():
        z = fn(cfg, x, sigmas, extra_args={}, disable=True, **kwargs)
        return _decoded(engine.model.vae, z)


@pytest.mark.parametrize("sampler_name,schedule", [("Euler a", "Automatic"), ("DPM++ 2M SDE", "Automatic"),
                                                   ("DPM2", "Karras"), ("DPM++ 2M", "Align Your Steps")])
def test_txt2img_pixels_are_a1111s(demo, monkeypatch, sampler_name, schedule):
    out = demo.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, width=64, height=64,
                                          sampler_name=sampler_name, scheduler=schedule, cfg_scale=CFG, seed=SEEDS[0],
                                          batch_size=2, do_not_save_samples=True, do_not_save_grid=True))
    ours = np.stack([np.asarray(img.convert("RGB")) for img in out.images])
    ref = _reference(demo, monkeypatch, sampler_name, schedule)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 1, (diff.max(), diff.mean())
    assert diff.mean() < 0.01


def test_hires_fix_is_an_img2img_pass_of_exactly_its_steps(demo, monkeypatch):
    """Hires fix: the first pass, the latent upscale, then A1111's sample_img2img with the hires steps given
    explicitly, which always means "exactly that many steps" (a steps/denoising-long schedule), with fresh noise
    from the seeds at the new size."""
    from modules.models import upscalers

    hr_steps, denoising = 4, 0.5
    out = demo.generate(GenerationRequest(prompt=PROMPT, negative_prompt=NEGATIVE, steps=STEPS, width=64, height=64,
                                          sampler_name="Euler a", cfg_scale=CFG, seed=SEEDS[0], batch_size=2,
                                          enable_hr=True, hr_scale=1.5, hr_upscaler="Latent",
                                          hr_second_pass_steps=hr_steps, denoising_strength=denoising,
                                          do_not_save_samples=True, do_not_save_grid=True))
    ours = np.stack([np.asarray(img.convert("RGB")) for img in out.images])
    assert ours.shape == (2, 96, 96, 3)

    _, _, inner, cfg = _reference_cfg(demo, "Euler a", "Automatic")
    with torch.no_grad():
        rng = ImageRNG(shape=(4, 8, 8), seeds=SEEDS, subseeds=SEEDS, source="CPU")
        sigmas = inner.get_sigmas(STEPS)
        x = rng.first() * sigmas[0]
        monkeypatch.setattr(ks, "torch", kdiffusion_ref.TorchHijack(rng))
        z = ks.sample_euler_ancestral(cfg, x, sigmas, disable=True)
        z = upscalers.upscale_latent(z, "Latent", 96, 96)
        total = int(hr_steps / denoising)
        sched_hr = inner.get_sigmas(total)[total - (hr_steps - 1) - 1:]
        rng_hr = ImageRNG(shape=(4, 12, 12), seeds=SEEDS, subseeds=SEEDS, source="CPU")
        xi = z + rng_hr.first() * sched_hr[0]
        monkeypatch.setattr(ks, "torch", kdiffusion_ref.TorchHijack(rng_hr))
        z = ks.sample_euler_ancestral(cfg, xi, sched_hr, disable=True)
        ref = _decoded(demo.model.vae, z)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())
