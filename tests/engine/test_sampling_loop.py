"""The denoising loop: schedule switching at the right denoiser call and AND combination."""
from __future__ import annotations

import torch

from modules.core import prompt_parser
from modules.core import samplers as names
from modules.core.sampling.discrete import DiscreteSchedule, alphas_cumprod
from modules.engine.denoiser import CFGDenoiser, SamplingInputs, combine_denoised, pad_to_tokens
from modules.engine.sampling import Sampler, SamplerSettings


class TextCodeModel:
    """A fake text encoder: each text becomes a (77, 4) tensor filled with a code of the text."""

    def __init__(self) -> None:
        self.codes: dict[str, float] = {}
        self.calls: list[list[str]] = []

    def code(self, text: str) -> float:
        return self.codes.setdefault(text, float(len(self.codes) + 1))

    def get_learned_conditioning(self, texts):
        self.calls.append(list(texts))
        return torch.stack([torch.full((77, 4), self.code(t)) for t in texts])


class RecordingInner:
    """An inner denoiser that answers each row's conditioning code and records what it saw per call."""

    def __init__(self) -> None:
        self.schedule = DiscreteSchedule(alphas_cumprod({}))
        self.seen: list[torch.Tensor] = []

    def __call__(self, x, sigma, cond):
        codes = cond.crossattn[:, 0, 0]
        self.seen.append(codes.clone())
        return codes.view(-1, 1, 1, 1).expand_as(x).clone()


class NoNoise:
    def next(self):
        return torch.zeros(1, 4, 8, 8)


def _inputs(model, prompt, negative, steps, cfg=7.0):
    c = prompt_parser.get_multicond_learned_conditioning(model, [prompt], steps)
    uc = prompt_parser.get_learned_conditioning(model, [negative], steps)
    empty = model.get_learned_conditioning([""])
    return SamplingInputs(cond=c, uncond=uc, cfg_scale=cfg, empty_chunk=empty)


def _run(sampler_name, inputs, steps):
    inner = RecordingInner()
    cfg = CFGDenoiser(inner, inputs)
    sampler = Sampler(names.find_sampler(sampler_name), names.find_schedule("Automatic"), cfg, SamplerSettings(),
                      noise_stream=NoNoise(), seeds=[1])
    sampler.sample(torch.zeros(1, 4, 8, 8), steps)
    return inner


def test_prompt_edit_switches_at_the_scheduled_step():
    model = TextCodeModel()
    inputs = _inputs(model, "a [cat:dog:4] photo", "", 10)
    unet = _run("Euler", inputs, 10)
    cat, dog = model.codes["a cat photo"], model.codes["a dog photo"]
    seen_cond = [float(s[0]) for s in unet.seen]  # row 0 is the cond, row 1 the uncond
    # A1111: text used for steps prev_end < step <= end_at_step, step = 0-based denoiser call index.
    assert seen_cond == [cat] * 5 + [dog] * 5


def test_second_order_sampler_counts_denoiser_calls():
    model = TextCodeModel()
    inputs = _inputs(model, "[red:blue:0.5] ball", "", 10)  # schedules over steps*2 as A1111 does
    unet = _run("Heun", inputs, 5)
    assert len(unet.seen) == 9  # 2 per step, the last step (to σ = 0) is first-order
    red, blue = model.codes["red ball"], model.codes["blue ball"]
    assert [float(s[0]) for s in unet.seen] == [red] * 6 + [blue] * 3


def test_and_combines_weighted_conditionings():
    model = TextCodeModel()
    inputs = _inputs(model, "a cat AND a dog:0.5 AND a bird :-1", "bad", 4, cfg=3.0)
    unet = RecordingInner()
    den = CFGDenoiser(unet, inputs)
    result = den(torch.zeros(1, 4, 2, 2), torch.tensor([14.6]))
    c = model.codes
    expected = c["bad"] + 3.0 * ((c["a cat"] - c["bad"]) * 1.0 + (c[" a dog"] - c["bad"]) * 0.5 + (c[" a bird"] - c["bad"]) * -1.0)
    assert torch.allclose(result, torch.full_like(result, expected))
    # one UNet call holding the three conds and the uncond
    assert unet.seen[0].tolist() == [c["a cat"], c[" a dog"], c[" a bird"], c["bad"]]


def test_distinct_texts_are_encoded_once():
    model = TextCodeModel()
    prompt_parser.get_multicond_learned_conditioning(model, ["x [a|b]"], 6)
    encoded = [t for call in model.calls for t in call]
    assert sorted(encoded) == ["x a", "x b"]


def test_pad_with_empty_chunks():
    cond = torch.ones(2, 154, 4)
    empty = torch.full((1, 77, 4), 5.0)
    short = torch.zeros(2, 77, 4)
    padded = pad_to_tokens(short, 154, empty)
    assert padded.shape == cond.shape
    assert torch.equal(padded[:, 77:], torch.full((2, 77, 4), 5.0))
    sdxl = {"crossattn": short, "pooled": torch.zeros(2, 8)}
    padded = pad_to_tokens(sdxl, 231, {"crossattn": empty, "pooled": torch.zeros(1, 8)})
    assert padded["crossattn"].shape == (2, 231, 4) and padded["pooled"].shape == (2, 8)


def test_cfg_combination_formula():
    x_out = torch.tensor([[1.0], [2.0], [4.0]])
    uncond = torch.tensor([[0.5]])
    out = combine_denoised(x_out, [[(0, 1.0), (1, 0.5), (2, -1.0)]], uncond, 2.0)
    assert torch.allclose(out, torch.tensor([[0.5 + 2.0 * ((1 - 0.5) + 0.5 * (2 - 0.5) - (4 - 0.5))]]))
