"""Sampler/schedule tables and name resolution (the samplers themselves: tests/engine/test_samplers_a1111.py)."""
import json

import pytest

from modules.core import samplers as S

SAMPLER_NAMES = [
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a", "Euler",
    "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "DDIM", "DDIM CFG++", "PLMS", "UniPC",
    "LCM",
]
SCHEDULE_LABELS = [
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
    "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
]


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


def test_schedule_ignored_by_the_timestep_samplers_only():
    assert S.SCHEDULE_IGNORED == {"DDIM", "DDIM CFG++", "PLMS", "UniPC"}


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
