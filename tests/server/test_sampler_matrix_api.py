"""The black-box check of issue 15: every sampler × schedule type through ``/sdapi/v1/txt2img`` on the shipped demo
model gives A1111's pixels (at most 1/255 apart), A1111's algorithm being re-run independently of our sampling code
by ``tests/a1111_reference.py`` (diffusers' single-file converters, k-diffusion's denoiser and samplers, A1111's
noise plumbing, per-image decode, truncation).

196 cases (20 samplers × 12 schedule types; the 4 timestep samplers, which ignore the schedule type, once each),
64×64, 10 steps, CFG 7, batch 2, plus Restart with its restart segments, A1111's other UniPC settings, img2img
for every sampler and the hires fix: 237 tests, four to seven minutes on one core by the machine's load (DPM adaptive
takes the most). Select with ``-m sampler_matrix``, leave out with
``-m "not sampler_matrix"``; ``tools/sampler_matrix.py`` prints the same comparison as a table.
"""
from __future__ import annotations

import pytest
import torch

from tests import sampler_matrix as matrix

pytestmark = [pytest.mark.sampler_matrix,
              pytest.mark.filterwarnings("ignore:Should have:UserWarning"),  # torchsde at the interval ends
              pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning")]  # k-diffusion DPM fast


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from tests.a1111_reference import Reference

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model runs fastest on one thread, and the machine is shared
    client = matrix.make_client(tmp_path_factory.mktemp("sampler-matrix"))
    assert client.post("/sdapi/v1/options", json={"show_progressbar": False}).status_code == 200
    yield client, Reference()
    torch.set_num_threads(before)


@pytest.mark.parametrize("sampler,schedule", matrix.CASES, ids=[f"{a}-{b}" for a, b in matrix.CASES])
def test_api_pixels_are_a1111s(world, sampler, schedule):
    client, reference = world
    outcome = matrix.compare(client, reference, sampler, schedule)
    assert outcome.ok, f"{sampler} / {schedule}: max |diff| {outcome.max_diff}/255, mean {outcome.mean_diff:.3f}"


@pytest.mark.parametrize("sampler,schedule", [("DDIM", "Karras"), ("DDIM CFG++", "SGM Uniform"), ("PLMS", "Exponential"),
                                              ("UniPC", "Beta")])
def test_timestep_samplers_ignore_the_schedule_type(world, sampler, schedule):
    client, reference = world
    outcome = matrix.compare(client, reference, sampler, schedule)  # the reference runs A1111's own grid
    assert outcome.ok, f"{sampler} / {schedule}: max |diff| {outcome.max_diff}/255"


@pytest.mark.parametrize("steps,schedule", [(20, "Automatic"), (36, "Exponential")])
def test_restart_with_restart_segments(world, steps, schedule):
    client, reference = world
    outcome = matrix.compare(client, reference, "Restart", schedule, steps=steps)
    assert outcome.ok, f"Restart / {steps} steps: max |diff| {outcome.max_diff}/255"


@pytest.mark.parametrize("options", [
    {"uni_pc_variant": "bh2"}, {"uni_pc_skip_type": "logSNR"}, {"uni_pc_skip_type": "time_quadratic"},
    {"uni_pc_order": 2}, {"uni_pc_order": 4, "uni_pc_lower_order_final": False},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_unipc_settings(world, options):
    client, reference = world
    outcome = matrix.compare(client, reference, "UniPC", "Automatic", override_settings=options, ref_options=options)
    assert outcome.ok, f"UniPC {options}: max |diff| {outcome.max_diff}/255"


IMG2IMG_CASES = [(s, "Automatic") for s in matrix.SAMPLERS] + [
    ("DPM++ 2M", "KL Optimal"), ("DPM++ 3M SDE", "KL Optimal"), ("Euler a", "Exponential"), ("DPM fast", "Beta")]


@pytest.mark.parametrize("sampler,schedule", IMG2IMG_CASES, ids=[f"{a}-{b}" for a, b in IMG2IMG_CASES])
def test_api_img2img_pixels_are_a1111s(world, sampler, schedule):
    """img2img (denoising 0.6) through ``/sdapi/v1/img2img``: A1111's start σ / start timestep, Brownian trees over
    the whole schedule, DPM fast/adaptive on the pass's own σ range. The init latent is the encoder's mean on
    both sides (A1111 samples it with its global RNG, which nothing can repeat: see the README)."""
    client, reference = world
    outcome = matrix.compare_img2img(client, reference, sampler, schedule)
    assert outcome.ok, f"img2img {sampler} / {schedule}: max |diff| {outcome.max_diff}/255"


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M SDE", "DPM2", "DDIM", "UniPC", "DPM fast"])
def test_api_hires_fix_pixels_are_a1111s(world, sampler):
    """The hires fix ("Latent" ×2, denoising 0.6): A1111's second pass with fresh per-image generators at the new
    size and exactly ``steps`` steps of a ``steps / denoising``-long schedule."""
    client, reference = world
    outcome = matrix.compare_hires(client, reference, sampler, "Automatic")
    assert outcome.ok, f"hires {sampler}: max |diff| {outcome.max_diff}/255"
