"""Every sampler × schedule type against a reference that follows A1111 v1.10.1, on a tiny UNet.

The reference for the k-diffusion samplers is k-diffusion itself (``k_diffusion.sampling`` and its
``CompVisDenoiser``, as A1111 calls them) with A1111's noise plumbing: ``randn_like`` draws the next tensor of
the per-image generators, the SDE samplers get one Brownian tree per image seed. Schedules k-diffusion does not
have, and A1111's own samplers, are re-derived here from the facts in ``shared/spec/a1111-sampling.md``.
Latents must agree within 1e-4.
"""
from __future__ import annotations

import inspect

import pytest
import torch

from modules.core import prompt_parser
from modules.core import samplers as names
from modules.core.sampling.discrete import alphas_cumprod
from modules.core.sampling.schedules import build_sigmas
from modules.engine.denoiser import CFGDenoiser, SamplingInputs
from modules.engine.rng import ImageRNG
from modules.engine.sampling import Sampler, SamplerSettings, make_inner
from tests import a1111_reference, kdiffusion_ref
from tests.tiny_models import TINY_TEXT_WIDTH

ks, kext = kdiffusion_ref.load()
# torchsde warns when a Brownian query touches the float-rounded interval ends; A1111 gets the same warning.
pytestmark = [pytest.mark.filterwarnings("ignore:Should have:UserWarning"),
              pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning")]  # k-diffusion's DPM fast

SEEDS = [11, 12]
SHAPE = (4, 8, 8)
STEPS = 10
CFG = 5.0
TOL = 1e-4

K_FUNCS = {
    "DPM++ 2M": "sample_dpmpp_2m", "DPM++ SDE": "sample_dpmpp_sde", "DPM++ 2M SDE": "sample_dpmpp_2m_sde",
    "DPM++ 2M SDE Heun": "sample_dpmpp_2m_sde", "DPM++ 2S a": "sample_dpmpp_2s_ancestral",
    "DPM++ 3M SDE": "sample_dpmpp_3m_sde", "Euler a": "sample_euler_ancestral", "Euler": "sample_euler",
    "LMS": "sample_lms", "Heun": "sample_heun", "DPM2": "sample_dpm_2", "DPM2 a": "sample_dpm_2_ancestral",
    "DPM fast": "sample_dpm_fast", "DPM adaptive": "sample_dpm_adaptive",
}
SCHEDULE_NAMES = [s.name for s in names.SCHEDULES]


class Texts:
    """A text encoder stand-in: each text is a fixed random (77, width) tensor."""

    def __init__(self) -> None:
        self.table: dict[str, torch.Tensor] = {}

    def get_learned_conditioning(self, texts):
        out = []
        for t in texts:
            if t not in self.table:
                g = torch.Generator().manual_seed(len(self.table) + 100)
                self.table[t] = torch.randn(77, TINY_TEXT_WIDTH, generator=g)
            out.append(self.table[t])
        return torch.stack(out)


class RefLDM(torch.nn.Module):
    """What k-diffusion's CompVisDenoiser wraps: ``alphas_cumprod`` and ``apply_model(x, t, cond)``."""

    def __init__(self, unet, abar):
        super().__init__()
        self.unet = unet
        self.alphas_cumprod = abar

    def apply_model(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond, return_dict=False)[0]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny UNets run fastest on one thread (and the shared test machine is busy)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def micro_unet() -> torch.nn.Module:
    """An SD1-layout UNet at toy widths (one cross-attention level): a call takes about 15 ms on one thread."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_TEXT_WIDTH, attention_head_dim=2, norm_num_groups=8).eval()


@pytest.fixture(scope="module")
def world():
    unet = micro_unet()
    abar = alphas_cumprod({})
    texts = Texts()
    prompts, negatives = ["a photo", "a photo"], ["", ""]
    cond = prompt_parser.get_multicond_learned_conditioning(texts, prompts, STEPS * 2)
    uncond = prompt_parser.get_learned_conditioning(texts, negatives, STEPS * 2)
    c = texts.get_learned_conditioning(prompts)
    u = texts.get_learned_conditioning(negatives)
    ref_inner = kext.CompVisDenoiser(RefLDM(unet, abar))

    def ref_cfg(x, sigma, **_):
        out = ref_inner(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([c, u]))
        d_c, d_u = out[: len(x)], out[len(x):]
        return d_u.clone() + (d_c - d_u) * (1.0 * CFG)

    def ref_eps(x, t, scale=CFG):
        """Guided ε at DDPM timestep t (A1111's timestep samplers), and the unconditional ε."""
        tt = t * torch.ones(2 * len(x))
        out = unet(torch.cat([x, x]), tt, encoder_hidden_states=torch.cat([c, u]), return_dict=False)[0]
        e_c, e_u = out[: len(x)], out[len(x):]
        return e_u.clone() + (e_c - e_u) * (1.0 * scale), e_u

    return {"unet": unet, "abar": abar, "cond": cond, "uncond": uncond, "empty": u[:1], "ref_inner": ref_inner,
            "ref_cfg": ref_cfg, "ref_eps": ref_eps}


# --- the reference schedules (spec §7.2), on k-diffusion's own model discretisation ---------------------------------


def ref_sigmas(world, sampler: names.SamplerInfo, schedule: str, steps: int) -> torch.Tensor:
    """The schedule re-derived in ``tests/a1111_reference.py`` (A1111's own sampler options, not ours), on
    k-diffusion's discretisation of this world's model."""
    return a1111_reference.schedule_sigmas(world["ref_inner"], sampler.name, schedule, steps)


def _rng() -> ImageRNG:
    return ImageRNG(shape=SHAPE, seeds=SEEDS, subseeds=SEEDS, source="CPU")


def run_reference(world, monkeypatch, sampler: names.SamplerInfo, sigmas: torch.Tensor, steps: int = STEPS):
    rng = _rng()
    noise = rng.first()
    monkeypatch.setattr(ks, "torch", kdiffusion_ref.TorchHijack(rng))
    fn = getattr(ks, K_FUNCS[sampler.name])
    params = inspect.signature(fn).parameters
    kwargs = {}
    x = noise * sigmas[0]
    if "sigmas" in params:
        kwargs["sigmas"] = sigmas
    if "n" in params:
        kwargs["n"] = steps
    if "sigma_min" in params:
        inner = world["ref_inner"]
        kwargs["sigma_min"], kwargs["sigma_max"] = inner.sigmas[0].item(), inner.sigmas[-1].item()
    if "eta" in params:
        kwargs["eta"] = 1.0
    if sampler.brownian_noise:
        kwargs["noise_sampler"] = ks.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=SEEDS)
    if sampler.options.get("solver_type") == "heun":
        kwargs["solver_type"] = "heun"
    with torch.no_grad():
        return fn(world["ref_cfg"], x, extra_args={}, disable=True, **kwargs)


def make_sampler(world, sampler: names.SamplerInfo, schedule: str | None, rng, settings=None) -> Sampler:
    inputs = SamplingInputs(cond=world["cond"], uncond=world["uncond"], cfg_scale=CFG, empty_chunk=world["empty"])
    inner = make_inner(sampler, world["unet"], world["abar"], "epsilon")
    cfg = CFGDenoiser(inner, inputs, timesteps=sampler.kind == "timesteps")
    return Sampler(sampler, names.find_schedule(schedule) if schedule else None, cfg, settings or SamplerSettings(),
                   noise_stream=rng, seeds=SEEDS)


def run_mine(world, sampler: names.SamplerInfo, schedule: str, steps: int = STEPS, settings=None) -> torch.Tensor:
    rng = _rng()
    noise = rng.first()
    with torch.no_grad():
        return make_sampler(world, sampler, schedule, rng, settings).sample(noise, steps)


K_CASES = [(s, sc) for s in K_FUNCS for sc in SCHEDULE_NAMES]


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
def test_schedules_match_the_reference(world, schedule):
    from modules.core.sampling.discrete import DiscreteSchedule

    model = DiscreteSchedule(world["abar"])
    assert torch.equal(model.sigmas, world["ref_inner"].sigmas)
    for sampler_name in ("Euler", "DPM++ 2M", "DPM2", "DPM++ 3M SDE"):
        sampler = names.find_sampler(sampler_name)
        for steps in (4, 10, 11, 30):
            mine, _ = build_sigmas(sampler, names.find_schedule(schedule), steps, model)
            ref = ref_sigmas(world, sampler, schedule, steps)
            assert mine.shape == ref.shape, (sampler_name, steps)
            assert torch.allclose(mine, ref, rtol=1e-6, atol=1e-6), (sampler_name, steps, mine, ref)


@pytest.mark.parametrize("sampler_name,schedule", K_CASES)
def test_k_diffusion_samplers_match_k_diffusion(world, monkeypatch, sampler_name, schedule):
    sampler = names.find_sampler(sampler_name)
    mine = run_mine(world, sampler, schedule)
    ref = run_reference(world, monkeypatch, sampler, ref_sigmas(world, sampler, schedule, STEPS))
    assert torch.isfinite(mine).all()
    assert (mine - ref).abs().max().item() <= TOL


# --- A1111's own samplers -----------------------------------------------------------------------------------------


def a1111_timesteps(steps: int) -> list[int]:
    """DDIM/PLMS/UniPC grid: range(0, 1000, 1000 // steps) + 1, clipped to 999."""
    return [min(t + 1, 999) for t in range(0, 1000, 1000 // steps)]


@pytest.mark.parametrize("steps", [10, 7])
def test_ddim_is_diffusers_ddim_one_step_short(world, steps):
    """A1111's DDIM loops len(timesteps) - 1 times and ends at ᾱ of the second timestep; diffusers' DDIMScheduler
    on the same grid takes one step more (to ᾱ₀). Without that last step they agree."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
    sched.set_timesteps(steps)
    grid = a1111_timesteps(steps)
    rng = _rng()
    x = rng.first()
    with torch.no_grad():
        mine = make_sampler(world, names.find_sampler("DDIM"), None, _rng_after_first()).sample(x, steps)
        for t in list(reversed(grid))[:-1]:
            eps, _ = world["ref_eps"](x, t)
            x = _ddim_step(world["abar"], x, eps, t, grid)
    assert (mine - x).abs().max().item() <= TOL
    if 1000 % steps == 0:  # diffusers' grid is A1111's when steps divides 1000
        assert sched.timesteps.tolist() == list(reversed(grid))


def _rng_after_first() -> ImageRNG:
    rng = _rng()
    rng.first()
    return rng


def _ddim_step(abar, x, eps, t, grid, direction=None):
    prev = grid[grid.index(t) - 1]
    a_t, a_prev = abar[t].double(), abar[prev].double()
    x0 = (x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()
    d = eps if direction is None else direction
    return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * d).float()


def test_ddim_cfgpp_uses_the_unconditional_direction_and_scale_over_12_5(world):
    steps = 10
    grid = a1111_timesteps(steps)
    x = _rng().first()
    with torch.no_grad():
        mine = make_sampler(world, names.find_sampler("DDIM CFG++"), None, _rng_after_first()).sample(x, steps)
        for t in list(reversed(grid))[:-1]:
            eps, e_u = world["ref_eps"](x, t, CFG / 12.5)
            x = _ddim_step(world["abar"], x, eps, t, grid, direction=e_u)
    assert (mine - x).abs().max().item() <= TOL


def test_plms_bootstraps_then_runs_adams_bashforth(world):
    steps = 10
    grid = a1111_timesteps(steps)
    abar = world["abar"]
    x = _rng().first()
    with torch.no_grad():
        mine = make_sampler(world, names.find_sampler("PLMS"), None, _rng_after_first()).sample(x, steps)
        history: list[torch.Tensor] = []
        for t in list(reversed(grid))[:-1]:
            eps, _ = world["ref_eps"](x, t)
            if not history:  # pseudo improved Euler: average with ε at the next timestep
                prev_t = grid[grid.index(t) - 1]
                x_next = _ddim_step(abar, x, eps, t, grid)
                e = (eps + world["ref_eps"](x_next, prev_t)[0]) / 2
            elif len(history) == 1:
                e = (3 * eps - history[-1]) / 2
            elif len(history) == 2:
                e = (23 * eps - 16 * history[-1] + 5 * history[-2]) / 12
            else:
                e = (55 * eps - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
            history = (history + [eps])[-3:]
            x = _ddim_step(abar, x, e, t, grid)
    assert (mine - x).abs().max().item() <= TOL


def test_unipc_runs_one_unet_call_per_step_on_a1111s_grid(world):
    calls = []
    unet = world["unet"]
    orig = unet.forward

    def spy(x, t, *a, **k):
        calls.append(t.clone())
        return orig(x, t, *a, **k)

    unet.forward = spy
    try:
        with torch.no_grad():
            out = make_sampler(world, names.find_sampler("UniPC"), None, _rng_after_first()).sample(_rng().first(), 10)
    finally:
        del unet.forward
    assert torch.isfinite(out).all()
    assert len(calls) == 10
    # model time (t - 1/N)·1000 on a time-uniform grid from t = 1: the first call is at 999
    assert calls[0][0].item() == pytest.approx(999.0)
    assert calls[1][0].item() == pytest.approx(999.0 - 99.9, abs=1e-3)


UNIPC_CASES = [  # (variant, skip type, order, lower order final, steps)
    ("bh1", "time_uniform", 3, True, 10), ("bh1", "time_uniform", 3, True, 7), ("bh2", "time_uniform", 3, True, 10),
    ("bh1", "time_quadratic", 3, True, 10), ("bh1", "logSNR", 3, True, 10), ("bh2", "logSNR", 2, True, 10),
    ("bh1", "time_uniform", 1, True, 10), ("bh1", "time_uniform", 2, True, 10), ("bh1", "time_uniform", 4, False, 10),
    ("vary_coeff", "time_uniform", 3, True, 10), ("vary_coeff", "logSNR", 2, True, 10),
    ("vary_coeff", "time_quadratic", 1, True, 10), ("vary_coeff", "time_uniform", 3, False, 12),
]


@pytest.mark.parametrize("variant,skip_type,order,lower_order_final,steps", UNIPC_CASES)
def test_unipc_matches_the_authors_algorithm(world, variant, skip_type, order, lower_order_final, steps):
    """A1111's UniPC (its port of the authors' code: data prediction, discrete VP schedule over ᾱ with log α
    linear in t, model time 1000·(t − 1/N), len(A1111 grid) steps) against tests/a1111_reference.py's
    independent implementation, for every setting A1111 offers."""
    from tests.a1111_reference import a1111_grid, unipc

    settings = SamplerSettings(uni_pc_variant=variant, uni_pc_skip_type=skip_type, uni_pc_order=order,
                               uni_pc_lower_order_final=lower_order_final)
    x = _rng().first()
    with torch.no_grad():
        mine = make_sampler(world, names.find_sampler("UniPC"), None, _rng_after_first(), settings).sample(x, steps)
        ref = unipc(lambda x, t: world["ref_eps"](x, t), x, world["abar"], len(a1111_grid(steps)), variant=variant,
                    skip_type=skip_type, order=order, lower_order_final=lower_order_final)
    assert torch.isfinite(mine).all()
    # float32 solves (as A1111's) against the reference's float64: 1e-4 of the latents' scale (the untrained micro
    # UNet drives them to ±25; order 4 without lower-order final steps amplifies the rounding most)
    assert (mine - ref).abs().max().item() <= TOL * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("steps,schedule", [(20, "automatic"), (24, "exponential"), (36, "karras"), (40, "automatic")])
def test_restart_from_20_steps_matches_a1111s_restart_list(world, steps, schedule):
    """Restart with segments (A1111's restart_list: one 9-step segment from 20 steps, two of steps // 4 from 36),
    values against tests/a1111_reference.py's restart written from A1111's facts."""
    from tests.a1111_reference import ImageNoise, restart

    sampler = names.find_sampler("Restart")
    mine = run_mine(world, sampler, schedule, steps)
    sigmas = ref_sigmas(world, sampler, schedule, steps)
    noise = ImageNoise(SEEDS, SHAPE)
    with torch.no_grad():
        ref = restart(world["ref_cfg"], noise.next() * sigmas[0], sigmas, noise)
    assert (mine - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("steps", [10, 19])
def test_restart_below_20_steps_is_heun(world, monkeypatch, steps):
    sampler = names.find_sampler("Restart")
    heun = names.find_sampler("Heun")
    mine = run_mine(world, sampler, "automatic", steps)
    ref = run_reference(world, monkeypatch, heun, ref_sigmas(world, sampler, "automatic", steps), steps)
    assert (mine - ref).abs().max().item() <= TOL


def test_restart_from_20_steps_adds_a_segment(world):
    calls = []
    unet = world["unet"]
    orig = unet.forward
    unet.forward = lambda *a, **k: (calls.append(1), orig(*a, **k))[1]
    try:
        with torch.no_grad():
            out = run_mine(world, names.find_sampler("Restart"), "automatic", 20)
    finally:
        del unet.forward
    assert torch.isfinite(out).all()
    # 11 Karras steps (Heun: 2 calls each, the last 1) + one restart segment of 9 Heun steps back from σ≈2 to σ≈0.1
    assert len(calls) == 11 * 2 - 1 + 9 * 2


@pytest.mark.parametrize("schedule", ["automatic", "karras", "sgm_uniform"])
def test_lcm_follows_its_own_grid_and_scaling(world, schedule):
    abar = world["abar"]
    grid_t = [999 - 20 * i for i in range(50)][::-1]  # 19, 39, ..., 999
    grid = kext.DiscreteSchedule(((1 - abar[grid_t]) / abar[grid_t]) ** 0.5, False)
    n = 6
    if schedule == "automatic":  # linspace in t from 999 to 19, read back on the grid
        t = torch.linspace(999, 19, n)
        sigmas = torch.cat([grid.t_to_sigma(((t - 19) / 20).clamp(0, 49)), torch.zeros(1)])
    elif schedule == "karras":
        sigmas = ks.get_sigmas_karras(n, grid.sigmas[0].item(), grid.sigmas[-1].item())
    else:
        def to_t(s):
            return (s.log() - grid.log_sigmas[:, None]).abs().argmin(0).view(s.shape) * 20 + 19

        t = torch.linspace(to_t(grid.sigmas[-1]), to_t(grid.sigmas[0]), n + 1)[:-1]
        sigmas = torch.cat([grid.t_to_sigma(((t - 19) / 20).clamp(0, 49)), torch.zeros(1)])
    rng = _rng()
    x = rng.first() * sigmas[0]
    c, u = world["empty"], world["empty"]
    unet = world["unet"]
    texts_c = world["cond"].batch[0][0].schedules[0].cond
    with torch.no_grad():
        mine = make_sampler(world, names.find_sampler("LCM"), schedule, _rng_after_first()).sample(_rng().first(), n)
        for i in range(n):
            s = sigmas[i]
            t = (s.log() - grid.log_sigmas).abs().argmin() * 20 + 19
            x_in = torch.cat([x, x]) * (1 / (s ** 2 + 1.0) ** 0.5)
            conds = torch.cat([texts_c[None].expand(2, -1, -1), u.expand(2, -1, -1)])
            eps = unet(x_in, t.expand(4), encoder_hidden_states=conds, return_dict=False)[0]
            den = torch.cat([x, x]) + eps * -s
            st = t * 10.0
            den = (st / (st ** 2 + 0.25) ** 0.5) * den + (0.25 / (st ** 2 + 0.25)) * torch.cat([x, x])
            d_c, d_u = den[:2], den[2:]
            x = d_u + (d_c - d_u) * CFG
            if sigmas[i + 1] > 0:
                x = x + sigmas[i + 1] * rng.next()
    assert (mine - x).abs().max().item() <= TOL


# --- img2img, inpainting, interrupt -------------------------------------------------------------------------------


@pytest.mark.parametrize("sampler_name", ["Euler a", "DPM++ 2M", "DPM++ 2M SDE", "DPM fast"])
@pytest.mark.parametrize("fix_steps", [False, True])
def test_img2img_starts_at_the_right_sigma(world, monkeypatch, sampler_name, fix_steps):
    """img2img: the last int(steps·denoising) + 1 sigmas of a steps-long schedule (or steps of a steps/denoising
    one with "do exactly the amount of steps"), started at init + noise·σ_start."""
    sampler = names.find_sampler(sampler_name)
    steps, denoising = 10, 0.6
    init = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(5))
    total, t_enc = (int(steps / denoising), steps - 1) if fix_steps else (steps, int(denoising * steps))
    full = ref_sigmas(world, sampler, "automatic", total)
    sched = full[total - t_enc - 1:]
    rng = _rng()
    noise = rng.first()
    monkeypatch.setattr(ks, "torch", kdiffusion_ref.TorchHijack(rng))
    fn = getattr(ks, K_FUNCS[sampler_name])
    kwargs = {"eta": 1.0} if "eta" in inspect.signature(fn).parameters else {}
    xi = init + noise * sched[0]
    if sampler_name == "DPM fast":
        kwargs.update(sigma_min=sched[-2], sigma_max=sched[0], n=len(sched) - 1)
    else:
        kwargs["sigmas"] = sched
    if sampler.brownian_noise:
        kwargs["noise_sampler"] = ks.BrownianTreeNoiseSampler(xi, full[full > 0].min(), full.max(), seed=SEEDS)
    with torch.no_grad():
        ref = fn(world["ref_cfg"], xi, extra_args={}, disable=True, **kwargs)
        settings = SamplerSettings(img2img_fix_steps=fix_steps)
        rng2 = _rng()
        mine = make_sampler(world, sampler, "automatic", rng2, settings).sample_img2img(init, rng2.first(), steps, denoising)
    assert (mine - ref).abs().max().item() <= TOL


def test_inpainting_blends_the_denoised_prediction_under_the_mask(world, monkeypatch):
    sampler = names.find_sampler("Euler")
    steps, denoising = 10, 0.75
    init = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(6))
    nmask = torch.zeros(2, *SHAPE)
    nmask[..., :, 4:] = 1.0  # regenerate the right half
    mask = 1.0 - nmask
    full = ref_sigmas(world, sampler, "automatic", steps)
    sched = full[steps - int(denoising * steps) - 1:]
    rng = _rng()
    noise = rng.first()
    monkeypatch.setattr(ks, "torch", kdiffusion_ref.TorchHijack(rng))

    def blended(x, sigma, **kw):
        return init * mask + nmask * world["ref_cfg"](x, sigma)

    with torch.no_grad():
        ref = ks.sample_euler(blended, init + noise * sched[0], sched, disable=True)
        ref = ref * nmask + init * mask
        rng2 = _rng()
        s = make_sampler(world, sampler, "automatic", rng2)
        s.model_wrap_cfg.mask, s.model_wrap_cfg.nmask = mask, nmask
        mine = s.sample_img2img(init, rng2.first(), steps, denoising)
        mine = mine * nmask + init * mask
    assert (mine - ref).abs().max().item() <= TOL
    assert torch.equal(mine[..., :4], init[..., :4])


@pytest.mark.parametrize("sampler_name", ["Euler a", "DDIM"])
def test_interrupt_keeps_the_last_conditional_prediction(world, sampler_name):
    """Interrupt (and Skip) stop at the next denoiser call; the pass hands back the conditional x0 prediction
    of the last call (A1111's last_latent), not the noisy latent and not nothing."""
    from modules.engine.job_state import GenerationInterrupted

    sampler = names.find_sampler(sampler_name)
    calls = []

    def check():
        if len(calls) >= 4:
            raise GenerationInterrupted(skipped=False)
        calls.append(1)

    rng = _rng()
    s = make_sampler(world, sampler, "automatic", rng)
    s.model_wrap_cfg.check = check
    seen = []
    inner = s.model_wrap_cfg.inner_model
    orig = inner.__class__.__call__

    def record(self, x, sigma, cond):
        out = orig(self, x, sigma, cond)
        seen.append((x, sigma, out))
        return out

    monkeypatch_inner = type(inner)
    monkeypatch_inner.__call__ = record
    try:
        with torch.no_grad():
            kept = s.sample(rng.first(), STEPS)
    finally:
        monkeypatch_inner.__call__ = orig
    assert s.stopped_early and len(calls) == 4
    x_in, sigma_in, out = seen[-1]
    expected = out[:2]  # the conditional rows (one per image) of the last call
    if sampler.kind == "timesteps":
        a = world["abar"][sigma_in[:2].long()].view(-1, 1, 1, 1)
        expected = (x_in[:2] - (1 - a).sqrt() * out[:2]) / a.sqrt()
    assert torch.allclose(kept, expected)


def test_seed_resize_noise_follows_a1111():
    """'Resize seed from': the old-size noise from a fresh generator of the seed, pasted centred into the image
    generator's first full-size draw; later step noise continues that generator."""
    r = ImageRNG(shape=(4, 8, 8), seeds=[5], subseeds=[5], seed_resize_from_h=32, seed_resize_from_w=32, source="CPU")
    out = r.first()[0]
    small = torch.randn((4, 4, 4), generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    expected = torch.randn((4, 8, 8), generator=g)
    expected[:, 2:6, 2:6] = small
    assert torch.equal(out, expected)
    assert torch.equal(r.next()[0], torch.randn((4, 8, 8), generator=g))


def test_cfg_callbacks_see_sigmas_and_a1111_shaped_objects(world):
    seen = []

    class Callbacks:
        def has(self, kind):
            return True

        def run(self, kind, params):
            seen.append((kind, params))

    sampler = make_sampler(world, names.find_sampler("Euler"), "karras", _rng_after_first())
    sampler.model_wrap_cfg.inputs = SamplingInputs(cond=world["cond"], uncond=world["uncond"], cfg_scale=CFG,
                                                   empty_chunk=world["empty"], callbacks=Callbacks())
    with torch.no_grad():
        sampler.sample(_rng().first(), 3)
    sigmas, _ = build_sigmas(names.find_sampler("Euler"), names.find_schedule("Karras"), 3, sampler.model_wrap.schedule)
    before = [p for k, p in seen if k == "cfg_denoiser"]
    assert [p.sigma.tolist() for p in before] == [[s.item()] * 4 for s in sigmas[:3]]  # 2 cond + 2 uncond rows
    assert all(p.denoiser is sampler.model_wrap_cfg and p.x.shape == (4, *SHAPE) for p in before)
    assert [p.total_sampling_steps for p in before] == [3, 3, 3]
    assert [k for k, _ in seen] == ["cfg_denoiser", "cfg_denoised", "cfg_after_cfg"] * 3
    assert [p.x.shape[0] for k, p in seen if k == "cfg_after_cfg"] == [2, 2, 2]
    # A1111's KDiffusionSampler shape
    assert sampler.model_wrap_cfg.inner_model is sampler.model_wrap and sampler.config.name == "Euler"
    assert sampler.model_wrap_cfg.step == 3 and sampler.last_latent.shape == (2, *SHAPE)
