"""A1111's CFG-denoiser options, each against A1111 v1.10.1's ``CFGDenoiser.forward`` re-written here from its facts:

* ``skip_early_cond`` ("Ignore negative prompt during early sampling"): while ``step / total_steps`` ≤ the value
  (``total_steps`` counts a second-order sampler's steps twice; 0 disables it), the UNet sees only the cond rows
  and the result is the cond prediction (CFG 1 with the cond copied into the uncond slot); infotext "Skip Early CFG".
* NGMS (``s_min_uncond``, "Negative Guidance minimum sigma"): otherwise, on odd denoiser calls (every call with
  ``s_min_uncond_all``) whose σ is below the value, the same skip; infotext "NGMS" (and "NGMS all steps").
* ``pad_cond_uncond``: when prompt and negative prompt differ in token length, the shorter is padded with whole
  empty-prompt chunks (``(len_c − len_u) // 77`` of them) and both go through the UNet in one batch; "Pad conds".
  ``pad_cond_uncond_v0`` (A1111 before 1.6, for DDIM): the uncond's last vector repeated (or the uncond cut) to
  the cond's length; "Pad conds v0". Without either, cond and uncond rows run as separate UNet calls.

Whole Euler/Heun runs on the micro UNet; latents within 1e-4 of k-diffusion's sampler driven by that CFG.
"""
from __future__ import annotations

import pytest
import torch

from modules.core import prompt_parser
from modules.core import samplers as names
from modules.engine.denoiser import CFGDenoiser, CFGOptions, SamplingInputs
from modules.engine.sampling import Sampler, SamplerSettings, make_inner
from tests.engine.test_samplers_a1111 import (CFG, SEEDS, STEPS, TOL, Texts, _rng, ks, one_thread,  # noqa: F401
                                              ref_sigmas, world)
from tests.tiny_models import TINY_TEXT_WIDTH

LONG = "a long prompt"  # two 75-token chunks: 154 tokens


class LongTexts(Texts):
    def get_learned_conditioning(self, texts):
        out = []
        for t in texts:
            if t not in self.table:
                g = torch.Generator().manual_seed(len(self.table) + 500)
                self.table[t] = torch.randn(154 if t == LONG else 77, TINY_TEXT_WIDTH, generator=g)
            out.append(self.table[t])
        return torch.stack(out)


class A1111CFG:
    """A1111's CFG denoiser for one prompt per image, with the options above (the reference)."""

    def __init__(self, inner, c, u, empty, total_steps, opts: CFGOptions):
        self.inner, self.c, self.u, self.empty = inner, c, u, empty
        self.total_steps, self.opts = total_steps, opts
        self.step = 0
        self.rows: list[int] = []  # UNet rows per denoiser call

    def __call__(self, x, sigma, **_):
        o, c, u, b = self.opts, self.c, self.u, len(x)
        skip = False
        if o.skip_early_cond != 0 and self.step / self.total_steps <= o.skip_early_cond:
            skip = True
        elif (self.step % 2 or o.s_min_uncond_all) and o.s_min_uncond > 0 and sigma[0] < o.s_min_uncond:
            skip = True
        if o.pad_cond_uncond_v0 and c.shape[1] != u.shape[1]:
            u = torch.hstack([u, u[:, -1:].repeat(1, c.shape[1] - u.shape[1], 1)]) if u.shape[1] < c.shape[1] \
                else u[:, :c.shape[1]]
        elif o.pad_cond_uncond and c.shape[1] != u.shape[1]:
            n = (c.shape[1] - u.shape[1]) // self.empty.shape[1]
            if n < 0:
                c = torch.cat([c, self.empty.repeat(b, -n, 1)], dim=1)
            elif n > 0:
                u = torch.cat([u, self.empty.repeat(b, n, 1)], dim=1)
        self.step += 1
        if skip:
            self.rows.append(b)
            return self.inner(x, sigma, cond=c)
        self.rows.append(2 * b)
        if c.shape[1] == u.shape[1]:
            out = self.inner(torch.cat([x, x]), torch.cat([sigma, sigma]), cond=torch.cat([c, u]))
            d_c, d_u = out[:b], out[b:]
        else:
            d_c, d_u = self.inner(x, sigma, cond=c), self.inner(x, sigma, cond=u)
        return d_u + (d_c - d_u) * CFG


class RowCounter:
    """Wraps our inner model and counts the rows of each UNet call, per denoiser call."""

    def __init__(self, inner, cfg):
        self.inner, self.cfg = inner, cfg
        self.rows: dict[int, int] = {}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, x, sigma, cond):
        self.rows[self.cfg.step] = self.rows.get(self.cfg.step, 0) + x.shape[0]
        return self.inner(x, sigma, cond)


def _run(world, sampler_name: str, opts: CFGOptions, prompt: str = "a photo", negative: str = ""):
    texts = LongTexts()
    prompts, negatives = [prompt] * 2, [negative] * 2
    cond = prompt_parser.get_multicond_learned_conditioning(texts, prompts, STEPS * 2)
    uncond = prompt_parser.get_learned_conditioning(texts, negatives, STEPS * 2)
    empty = texts.get_learned_conditioning([""])
    sampler = names.find_sampler(sampler_name)
    inputs = SamplingInputs(cond=cond, uncond=uncond, cfg_scale=CFG, empty_chunk=empty)
    cfg = CFGDenoiser(make_inner(sampler, world["unet"], world["abar"], "epsilon"), inputs, options=opts)
    counter = RowCounter(cfg.inner_model, cfg)
    cfg.inner_model = counter
    rng = _rng()
    noise = rng.first()
    mine_sampler = Sampler(sampler, None, cfg, SamplerSettings(cfg=opts), noise_stream=rng, seeds=SEEDS)
    with torch.no_grad():
        mine = mine_sampler.sample(noise, STEPS)
        sigmas = ref_sigmas(world, sampler, "automatic", STEPS)
        total = STEPS * 2 if sampler.second_order else STEPS
        ref_cfg = A1111CFG(world["ref_inner"], texts.get_learned_conditioning(prompts),
                           texts.get_learned_conditioning(negatives), empty, total, opts)
        fn = ks.sample_heun if sampler_name == "Heun" else ks.sample_euler
        ref = fn(ref_cfg, noise * sigmas[0], sigmas, disable=True)
    params = {**mine_sampler.extra_generation_params, **cfg.extra_generation_params}
    return mine, ref, [counter.rows[i] for i in sorted(counter.rows)], ref_cfg.rows, params


@pytest.mark.parametrize("sampler_name,value", [("Euler", 0.25), ("Heun", 0.25), ("Euler", 0.5)])
def test_skip_early_cond_drops_the_negative_prompt_early(world, sampler_name, value):
    mine, ref, rows, ref_rows, params = _run(world, sampler_name, CFGOptions(skip_early_cond=value))
    assert rows == ref_rows and rows[0] == 2 and rows[-1] == 4
    assert (mine - ref).abs().max().item() <= TOL
    assert params["Skip Early CFG"] == value


def test_skip_early_cond_zero_never_skips(world):
    mine, ref, rows, ref_rows, params = _run(world, "Euler", CFGOptions(skip_early_cond=0.0))
    assert rows == [4] * STEPS and rows == ref_rows and "Skip Early CFG" not in params
    assert (mine - ref).abs().max().item() <= TOL


@pytest.mark.parametrize("every_step", [False, True])
def test_ngms_skips_the_negative_prompt_below_its_sigma(world, every_step):
    opts = CFGOptions(s_min_uncond=3.0, s_min_uncond_all=every_step)
    mine, ref, rows, ref_rows, params = _run(world, "Euler", opts)
    assert rows == ref_rows and 2 in rows and rows[0] == 4
    if not every_step:  # only odd denoiser calls skip
        assert all(r == 4 for r in rows[::2])
    assert (mine - ref).abs().max().item() <= TOL
    assert params["NGMS"] == 3.0 and params.get("NGMS all steps", False) == every_step


@pytest.mark.parametrize("prompt,negative", [(LONG, ""), ("a photo", LONG)])
@pytest.mark.parametrize("option", ["pad_cond_uncond", "pad_cond_uncond_v0", None])
def test_pad_conds(world, prompt, negative, option):
    opts = CFGOptions(**({option: True} if option else {}))
    mine, ref, rows, ref_rows, params = _run(world, "Euler", opts, prompt, negative)
    assert rows == ref_rows == [4] * STEPS
    assert (mine - ref).abs().max().item() <= TOL
    assert params.get("Pad conds", False) == (option == "pad_cond_uncond")
    assert params.get("Pad conds v0", False) == (option == "pad_cond_uncond_v0")
