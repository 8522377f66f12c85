"""Real A1111 infotexts become requests and generate without warnings."""
from __future__ import annotations

import json

from modules.core import infotext
from modules.core.request import GenerationRequest
from modules.core.infotext_request import request_from_infotext


def _samples(real_fixtures):
    return json.loads((real_fixtures / "infotext" / "a1111_infotext_samples.json").read_text(encoding="utf8"))


def test_fields_from_real_infotexts(real_fixtures):
    samples = _samples(real_fixtures)
    fields, overrides, problems = request_from_infotext(infotext.parse_generation_parameters(samples[1]["parameters"]))
    assert not problems
    assert fields["sampler_name"] == "DPM++ 2M" and fields["scheduler"] == "Karras"
    assert fields["cfg_scale"] == 5.5 and fields["seed"] == 3888671826
    assert (fields["width"], fields["height"]) == (1024, 1024)
    assert fields["enable_hr"] and fields["hr_scale"] == 1.5 and fields["hr_second_pass_steps"] == 10
    assert fields["hr_upscaler"] == "R-ESRGAN 4x+ Anime6B" and fields["denoising_strength"] == 0.3
    assert overrides["sd_model_checkpoint"] == "45a21ea00a"
    old = infotext.parse_generation_parameters(samples[4]["parameters"])
    fields, overrides, _ = request_from_infotext(old)
    assert fields["sampler_name"] == "DPM++ 2M" and fields["scheduler"] == "Karras"  # "DPM++ 2M Karras" split
    assert fields["clip_skip"] == 2 and overrides["eta_noise_seed_delta"] == 31337


def test_real_prompt_generates_without_warnings(real_fixtures, tiny_engine):
    params = infotext.parse_generation_parameters(_samples(real_fixtures)[0]["parameters"])
    fields, _overrides, problems = request_from_infotext(params)
    assert not problems
    fields.update(width=64, height=64, steps=3)  # the real size/steps are for an SDXL model on a GPU
    out = tiny_engine.generate(GenerationRequest(**fields))
    assert out.warnings == []
    assert len(out.images) == 1
    written = infotext.parse_generation_parameters(out.infotexts[0])
    assert written["Prompt"] == params["Prompt"]
    assert written["Negative prompt"] == params["Negative prompt"]
    assert written["Sampler"] == "DPM++ 2M" and written["Schedule type"] == "Karras"
    assert written["Seed"] == "3782896554"
