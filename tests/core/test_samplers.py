"""Sampler/schedule tables, name resolution and the diffusers schedulers built for every combination."""
import inspect
import json

import numpy as np
import pytest
import torch

from modules.core import samplers as S

# torchsde (DPM++ SDE's Brownian tree) warns about float32 rounding at the interval ends; harmless, as in A1111.
pytestmark = pytest.mark.filterwarnings("ignore:Should have ta>=t0:UserWarning")

SAMPLER_NAMES = [
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a", "Euler",
    "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++", "PLMS", "UniPC",
    "LCM",
]
SCHEDULE_LABELS = [
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
    "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
]


@pytest.fixture(scope="module")
def sd15_config(real_fixtures):
    return json.loads((real_fixtures / "configs/sd15/scheduler/scheduler_config.json").read_text())


@pytest.fixture(scope="module")
def sd15_sigmas(sd15_config):
    c = sd15_config
    betas = torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, c["num_train_timesteps"],
                           dtype=torch.float32) ** 2
    ac = torch.cumprod(1.0 - betas, dim=0)
    return (((1 - ac) / ac) ** 0.5).double().numpy()


# ------------------------------------------------------------------------------------------------ tables / API


def test_tables_in_ui_order():
    assert [s.name for s in S.SAMPLERS] == SAMPLER_NAMES
    assert [s.label for s in S.SCHEDULES] == SCHEDULE_LABELS
    assert [s.name for s in S.SCHEDULES] == [
        "automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform", "kl_optimal",
        "align_your_steps", "simple", "normal", "ddim", "beta",
    ]
    by = {s.name: s for s in S.SAMPLERS}
    assert by["Euler a"].aliases == ("k_euler_a", "k_euler_ancestral")
    assert by["DPM adaptive"].aliases == ("k_dpm_ad",)
    assert by["LCM"].aliases == ("k_lcm",)
    assert by["DPM++ 3M SDE"].discard_next_to_last_sigma and by["DPM++ 3M SDE"].brownian_noise
    assert by["DPM2 a"].uses_ensd and by["DPM2 a"].second_order and by["DPM2 a"].default_scheduler == "karras"
    assert by["DPM++ 2M SDE"].default_scheduler == "exponential"
    assert by["Euler"].default_scheduler is None and not by["Euler"].second_order
    assert {s.name for s in S.SAMPLERS if s.second_order} == {
        "DPM++ SDE", "DPM++ 2S a", "Heun", "DPM2", "DPM2 a", "Restart"}
    assert {s.name for s in S.SAMPLERS if s.uses_ensd} == {
        "DPM++ 2S a", "Euler a", "DPM2 a", "DPM fast", "DPM adaptive"}


def test_samplers_for_api_shape():
    api = S.samplers_for_api()
    assert len(api) == 20
    assert api[0] == {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}}
    sde = next(a for a in api if a["name"] == "DPM++ SDE")
    assert sde["options"] == {"scheduler": "karras", "second_order": "True", "brownian_noise": "True"}
    assert next(a for a in api if a["name"] == "Euler")["options"] == {}
    for item in api:
        assert set(item) == {"name", "aliases", "options"}
        assert all(isinstance(v, str) for v in item["options"].values())
    json.dumps(api)


def test_schedulers_for_api_shape():
    api = S.schedulers_for_api()
    assert api[0] == {"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1,
                      "need_inner_model": False}
    by = {a["name"]: a for a in api}
    assert by["karras"]["default_rho"] == 7.0
    assert by["polyexponential"]["default_rho"] == 1.0
    assert by["sgm_uniform"]["aliases"] == ["SGMUniform"]
    assert [a["name"] for a in api if a["need_inner_model"]] == [
        "uniform", "sgm_uniform", "simple", "normal", "ddim", "beta"]
    json.dumps(api)


def test_second_order_and_denoiser_calls():
    assert S.is_second_order("Heun") and S.is_second_order(S.find_sampler("k_dpm_2_a"))
    assert not S.is_second_order("Euler a")
    assert S.total_denoiser_calls("DPM++ SDE", 20) == 40
    assert S.total_denoiser_calls("DPM++ 2M", 20) == 20
    with pytest.raises(ValueError, match="sampler_name"):
        S.is_second_order("nope")


def test_approximation_keys_are_known_names():
    for key in S.APPROXIMATIONS:
        assert S.find_sampler(key) or S.find_schedule(key), key
    for name in ("DPM++ 2S a", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++", "KL Optimal",
                 "Align Your Steps", "Polyexponential"):
        assert name in S.APPROXIMATIONS


# ------------------------------------------------------------------------------------------------ resolve


@pytest.mark.parametrize(
    "name, scheduler, want_sampler, want_label",
    [
        ("DPM++ 2M", None, "DPM++ 2M", "Karras"),
        ("dpm++ 2m", "automatic", "DPM++ 2M", "Karras"),
        ("k_dpmpp_2m", "", "DPM++ 2M", "Karras"),
        (None, None, "DPM++ 2M", "Karras"),
        ("", "Automatic", "DPM++ 2M", "Karras"),
        ("DPM++ 2M SDE", None, "DPM++ 2M SDE", "Exponential"),
        ("DPM++ 2M SDE Heun", None, "DPM++ 2M SDE Heun", "Exponential"),
        ("Euler a", None, "Euler a", "Automatic"),
        ("EULER A", "AUTOMATIC", "Euler a", "Automatic"),
        ("k_euler_ancestral", "Karras", "Euler a", "Karras"),
        ("k_euler_a", "karras", "Euler a", "Karras"),
        ("Euler", "SGMUniform", "Euler", "SGM Uniform"),
        ("Euler", "sgm_uniform", "Euler", "SGM Uniform"),
        ("Euler", "align_your_steps", "Euler", "Align Your Steps"),
        ("Heun", None, "Heun", "Automatic"),
        ("Restart", None, "Restart", "Karras"),
        ("DDIM", None, "DDIM", "Automatic"),
        ("DDIM", "Karras", "DDIM", "Karras"),
        ("UniPC", None, "UniPC", "Automatic"),
        ("LCM", None, "LCM", "Automatic"),
        # old combined names (infotexts before v1.9)
        ("DPM++ 2M Karras", None, "DPM++ 2M", "Karras"),
        ("DPM++ 2M SDE Karras", None, "DPM++ 2M SDE", "Karras"),
        ("DPM++ 2M SDE Exponential", None, "DPM++ 2M SDE", "Exponential"),
        ("DPM++ SDE Karras", None, "DPM++ SDE", "Karras"),
        ("DPM2 a Karras", None, "DPM2 a", "Karras"),
        ("Euler a SGMUniform", None, "Euler a", "SGM Uniform"),
        ("Euler sgm_uniform", None, "Euler", "SGM Uniform"),
        ("dpm++ 2m karras", None, "DPM++ 2M", "Karras"),
        ("k_dpmpp_2m Karras", None, "DPM++ 2M", "Karras"),
        ("DPM++ 2M Karras", "Exponential", "DPM++ 2M", "Karras"),  # the name's schedule wins, as in A1111
        ("DPM++ 2M Automatic", None, "DPM++ 2M", "Karras"),
    ],
)
def test_resolve_sampler_vectors(name, scheduler, want_sampler, want_label):
    sampler, schedule = S.resolve_sampler(name, scheduler)
    assert sampler.name == want_sampler
    assert schedule.label == want_label


def test_resolve_sampler_errors_list_valid_names():
    with pytest.raises(ValueError) as e:
        S.resolve_sampler("Euler b", None)
    msg = str(e.value)
    assert "sampler_name" in msg and "'Euler b'" in msg
    for n in SAMPLER_NAMES:
        assert n in msg
    with pytest.raises(ValueError) as e:
        S.resolve_sampler("Euler", "Karas")
    msg = str(e.value)
    assert "scheduler" in msg and "'Karas'" in msg
    for n in SCHEDULE_LABELS:
        assert n in msg
    with pytest.raises(ValueError, match="sampler_name"):
        S.resolve_sampler("Foo Karras", None)  # a schedule suffix on an unknown sampler is still unknown


def test_infotext_schedule_label():
    label = S.infotext_schedule_label
    assert label(S.find_sampler("DPM++ 2M"), S.AUTOMATIC) == "Karras"
    assert label(S.find_sampler("DPM++ 3M SDE"), S.AUTOMATIC) == "Exponential"
    assert label(S.find_sampler("Euler a"), S.AUTOMATIC) == "Automatic"
    assert label(S.find_sampler("DDIM"), S.find_schedule("karras")) == "Karras"
    assert label(*S.resolve_sampler("DPM++ 2M", "Uniform")) == "Uniform"
    assert S.SCHEDULERS is S.SCHEDULES


def test_split_combined_name():
    assert S.split_combined_name("Euler") is None
    assert S.split_combined_name("Karras") is None
    sampler, sched = S.split_combined_name("DPM++ 2M SDE Heun Karras")
    assert (sampler.name, sched.label) == ("DPM++ 2M SDE Heun", "Karras")


# ------------------------------------------------------------------------------------------------ diffusers


def _run(scheduler, batch=2, steps=20, seed=0, generators=None, n_steps=None):
    """Drive ``scheduler`` like a pipeline with a fake denoiser; returns the final latents."""
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=g) * scheduler.init_noise_sigma
    accepts_gen = "generator" in inspect.signature(scheduler.step).parameters
    timesteps = scheduler.timesteps if n_steps is None else scheduler.timesteps[:n_steps]
    for t in timesteps:
        model_in = scheduler.scale_model_input(x, t)
        assert torch.isfinite(model_in).all()
        eps = 0.5 * torch.tanh(model_in) + 0.1 * torch.randn(x.shape, generator=g)
        kwargs = {"generator": generators} if accepts_gen and generators is not None else {}
        x = scheduler.step(eps, t, x, **kwargs).prev_sample
        assert torch.isfinite(x).all()
    return x


@pytest.mark.parametrize("sampler_name", SAMPLER_NAMES)
@pytest.mark.parametrize("schedule_label", SCHEDULE_LABELS)
def test_every_sampler_and_schedule_builds_and_steps(sd15_config, sampler_name, schedule_label, caplog):
    caplog.set_level("WARNING")
    sampler, schedule = S.resolve_sampler(sampler_name, schedule_label)
    sched = S.build_scheduler(sampler, schedule, sd15_config, noise_seeds=[11, 12])
    assert not [r for r in caplog.records if "not expected" in r.getMessage()]  # only known flags are passed
    cls_name, _ = S.scheduler_plan(sampler, schedule)
    assert type(sched).__name__ == cls_name
    assert sched.config.beta_schedule == "scaled_linear"
    assert sched.config.beta_start == pytest.approx(0.00085)
    assert sched.config.prediction_type == "epsilon"
    gens = [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    out = _run(sched, batch=2, steps=20, generators=gens)
    assert out.shape == (2, 4, 8, 8)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("schedule_label", ["Automatic", "Karras", "Simple"])
def test_v_prediction_and_betas_preserved(sd15_config, schedule_label):
    cfg = dict(sd15_config, prediction_type="v_prediction", beta_end=0.0125)
    for sampler in S.SAMPLERS:
        sched = S.build_scheduler(*S.resolve_sampler(sampler.name, schedule_label), cfg)
        assert sched.config.prediction_type == "v_prediction", sampler.name
        assert sched.config.beta_end == pytest.approx(0.0125)
        if schedule_label == "Karras":
            out = _run(sched, batch=1, steps=6, generators=[torch.Generator().manual_seed(0)])
            assert torch.isfinite(out).all()


def test_model_config_flags_do_not_leak(real_fixtures):
    # SDXL's config says timestep_spacing="leading"; some fine-tunes ship use_karras_sigmas=True.
    cfg = json.loads((real_fixtures / "configs/sdxl/scheduler/scheduler_config.json").read_text())
    cfg["use_karras_sigmas"] = True
    sched = S.build_scheduler(*S.resolve_sampler("Euler", None), cfg)
    assert sched.config.use_karras_sigmas is False
    assert sched.config.timestep_spacing == "linspace"
    sched.set_timesteps(20)
    np.testing.assert_allclose(sched.timesteps.numpy(), np.linspace(999, 0, 20), atol=1e-3)


def _karras(n, smin, smax, rho=7.0):
    ramp = np.linspace(0, 1, n)
    return (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho


@pytest.mark.parametrize("sampler_name, schedule", [
    ("DPM++ 2M", None), ("DPM++ 2M", "Karras"), ("Euler", "Karras"), ("LMS", "Karras"), ("Euler a", "Karras"),
    ("DPM++ SDE", None), ("DPM++ 2S a", None),
])
@pytest.mark.parametrize("steps", [7, 20, 30])
def test_karras_sigmas_match_formula(sd15_config, sd15_sigmas, sampler_name, schedule, steps):
    sched = S.build_scheduler(*S.resolve_sampler(sampler_name, schedule), sd15_config)
    sched.set_timesteps(steps)
    got = sched.sigmas.double().numpy()
    got = got[np.concatenate([[True], np.diff(got) != 0])]  # second-order classes repeat sigmas
    want = _karras(steps, sd15_sigmas[0], sd15_sigmas[-1])
    np.testing.assert_allclose(got[:-1], want, rtol=2e-5)
    assert got[-1] == 0.0


def test_heun_and_dpm2_karras_sigmas(sd15_config, sd15_sigmas):
    for name in ("Heun", "DPM2", "Restart"):
        sched = S.build_scheduler(*S.resolve_sampler(name, "Karras"), sd15_config)
        sched.set_timesteps(10)
        uniq = []
        for s in sched.sigmas.double().numpy():
            if not uniq or s != uniq[-1]:
                uniq.append(s)
        np.testing.assert_allclose(uniq[:-1], _karras(10, sd15_sigmas[0], sd15_sigmas[-1]), rtol=2e-5)


def test_exponential_sigmas_match_formula(sd15_config, sd15_sigmas):
    for name, schedule in (("DPM++ 2M SDE", None), ("Euler", "Exponential"), ("Euler", "Polyexponential"),
                           ("DPM++ 3M SDE", None)):
        sched = S.build_scheduler(*S.resolve_sampler(name, schedule), sd15_config)
        sched.set_timesteps(15)
        want = np.exp(np.linspace(np.log(sd15_sigmas[-1]), np.log(sd15_sigmas[0]), 15))
        np.testing.assert_allclose(sched.sigmas.double().numpy()[:-1], want, rtol=2e-5)


def test_t_spaced_schedules_match_a1111(sd15_config, sd15_sigmas):
    n = 20

    def timesteps(sampler, schedule):
        sched = S.build_scheduler(*S.resolve_sampler(sampler, schedule), sd15_config)
        sched.set_timesteps(n)
        return sched.timesteps.double().numpy(), sched

    # Uniform / Normal / Automatic on Euler: k-diffusion get_sigmas(n): t = linspace(999, 0, n)
    for schedule in (None, "Uniform", "Normal"):
        t, _ = timesteps("Euler", schedule)
        np.testing.assert_allclose(t, np.linspace(999, 0, n), atol=1e-3)
    # Simple: every (1000/n)-th sigma from the top
    t, sched = timesteps("Euler", "Simple")
    np.testing.assert_array_equal(t, [999 - int(x * 1000 / n) for x in range(n)])
    np.testing.assert_allclose(sched.sigmas.numpy()[:-1], sd15_sigmas[t.astype(int)], rtol=1e-5)
    # DDIM schedule: sigma indices 1, 1+1000//n, ..., reversed
    t, _ = timesteps("Euler", "DDIM")
    np.testing.assert_array_equal(t, list(range(1, 1000, 1000 // n))[::-1])
    # A1111 timestep samplers: clip(range(0, 1000, 1000 // n) + 1)
    for name in ("DDIM", "DDIM CFG++"):
        for schedule in (None, "Karras", "Exponential"):  # A1111 ignores the schedule type for these
            t, _ = timesteps(name, schedule)
            np.testing.assert_array_equal(t, np.arange(0, 1000, 1000 // n)[::-1] + 1)
    t, _ = timesteps("PLMS", None)
    assert set(t.astype(int)) == set(np.arange(0, 1000, 1000 // n) + 1)
    # UniPC: time-uniform from t=999 to the σ(0) target
    t, sched = timesteps("UniPC", "Karras")
    np.testing.assert_allclose(t, np.linspace(999, 0, n + 1)[:-1], atol=0.51)
    assert sched.sigmas[-1].item() == pytest.approx(sd15_sigmas[0], rel=1e-5)


def test_euler_a_with_sigma_schedule_is_euler_ancestral(sd15_config):
    """DPMSolverMultistep(sde-dpmsolver++, order 1) reproduces k-diffusion's sample_euler_ancestral step."""
    sched = S.build_scheduler(*S.resolve_sampler("Euler a", "Karras"), sd15_config)
    sched.set_timesteps(12)
    sig = sched.sigmas.double()
    g = torch.Generator().manual_seed(3)
    x_ve = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64) * sig[0]
    for i, t in enumerate(sched.timesteps):
        s, s_next = sig[i], sig[i + 1]
        x0 = torch.randn(x_ve.shape, generator=g, dtype=torch.float64) * 0.5
        eps = (x_ve - x0) / s
        # k-diffusion Euler ancestral, eta=1
        s_up = min(s_next, (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
        s_down = (s_next ** 2 - s_up ** 2) ** 0.5
        noise = torch.randn(x_ve.shape, generator=torch.Generator().manual_seed(100 + i), dtype=torch.float32)
        want = x_ve + (x_ve - x0) / s * (s_down - s) + noise.double() * s_up
        # diffusers works on x / sqrt(σ² + 1)
        out = sched.step(eps.float(), t, (x_ve / (s ** 2 + 1) ** 0.5).float(),
                         generator=torch.Generator().manual_seed(100 + i)).prev_sample.double()
        got = out * (s_next ** 2 + 1) ** 0.5
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        x_ve = want


@pytest.mark.parametrize("sampler_name, schedule", [
    ("Euler a", None), ("Euler a", "Karras"), ("DPM2 a", None), ("DPM++ 2M SDE", None), ("DPM++ 3M SDE", None),
    ("DPM++ 2S a", None), ("LCM", None), ("Euler", None),
])
def test_per_image_generators_make_images_independent_of_batch(sd15_config, sampler_name, schedule):
    info = S.resolve_sampler(sampler_name, schedule)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 4, 8, 8, generator=g)

    def run(batch_x, gens):
        sched = S.build_scheduler(*info, sd15_config)
        sched.set_timesteps(8)
        lat = batch_x * sched.init_noise_sigma
        for t in sched.timesteps:
            eps = 0.3 * torch.tanh(sched.scale_model_input(lat, t))
            lat = sched.step(eps, t, lat, generator=gens).prev_sample
        return lat

    both = run(x, [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    first = run(x[:1], [torch.Generator().manual_seed(1)])
    second = run(x[1:], [torch.Generator().manual_seed(2)])
    torch.testing.assert_close(both[:1], first)
    torch.testing.assert_close(both[1:], second)


def test_dpmpp_sde_noise_seeds_per_image(sd15_config):
    info = S.resolve_sampler("DPM++ SDE", None)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))

    def run(batch_x, seeds):
        sched = S.build_scheduler(*info, sd15_config, noise_seeds=seeds)
        sched.set_timesteps(6)
        lat = batch_x * sched.init_noise_sigma
        for t in sched.timesteps:
            eps = 0.3 * torch.tanh(sched.scale_model_input(lat, t))
            lat = sched.step(eps, t, lat).prev_sample
        return lat

    both = run(x, [101, 202])
    again = run(x, [101, 202])
    torch.testing.assert_close(both, again)
    torch.testing.assert_close(both[:1], run(x[:1], [101]))
    torch.testing.assert_close(both[1:], run(x[1:], [202]))
    assert not torch.allclose(both, run(x, [101, 203]))
