"""The SDXL refiner checkpoint (sd_xl_refiner layout) as a model of its own and as the Refiner after SDXL base.

Tiny random checkpoints in the real key layouts (tests/tiny_models.py); every check is on the values the UNet
receives, on pixels or on infotexts.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.core import infotext
from modules.core.request import GenerationRequest
from modules.scripting import runtime
from modules.settings import cmd_args
from tests import tiny_models


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("sdxl_refiner")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sdxl(seed=3), ckpt_dir / "base.safetensors", "sdxl")
    tiny_models.write_single_file(tiny_models.tiny_sdxl_refiner(seed=5), ckpt_dir / "refiner.safetensors",
                                  "sdxl-refiner")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    engine.select_checkpoint("base.safetensors")
    yield engine
    runtime.unbind(engine)  # later tests expect no Engine behind A1111's globals


def _request(**kw) -> GenerationRequest:
    kw.setdefault("prompt", "a cat")
    kw.setdefault("negative_prompt", "blurry")
    kw.setdefault("steps", 4)
    kw.setdefault("width", 64)
    kw.setdefault("height", 64)
    return GenerationRequest(seed=11, sampler_name="Euler", do_not_save_samples=True,
                             do_not_save_grid=True, **kw)


def _pixels(processed) -> np.ndarray:
    return np.asarray(processed.images[0], dtype=np.int16)


class _UnetInputs:
    """What every UNet call receives (time ids and context width), through a forward pre-hook."""

    def __init__(self):
        self.calls: list[dict] = []
        self.handles = []

    def watch(self, unet) -> None:
        def hook(module, args, kwargs):
            added = kwargs.get("added_cond_kwargs") or {}
            self.calls.append({"time_ids": added["time_ids"].detach().float().cpu().clone(),
                               "context": tuple(kwargs["encoder_hidden_states"].shape),
                               "refiner": module.config.projection_class_embeddings_input_dim
                               == module.config.cross_attention_dim + 5 * module.config.addition_time_embed_dim})
        self.handles.append(unet.register_forward_pre_hook(hook, with_kwargs=True))

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def test_refiner_loads_as_a_checkpoint_and_generates(engine):
    engine.select_checkpoint("refiner.safetensors")
    try:
        model = engine.model
        assert model.family == "sdxl-refiner" and len(model.text_encoders) == 1 and model.native_size == 1024
        txt = engine.generate(_request())
        image = _pixels(txt)
        assert image.shape == (64, 64, 3) and image.std() > 0
        assert infotext.parse_generation_parameters(txt.infotexts[0])["Model"] == "refiner"
        init = Image.fromarray(np.uint8(np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3)))
        img = _pixels(engine.generate(_request(init_images=[init], denoising_strength=0.5)))
        assert img.shape == (64, 64, 3) and not np.array_equal(img, image)
    finally:
        engine.select_checkpoint("base.safetensors")


def test_time_ids_carry_the_aesthetic_score_per_row(engine):
    engine.select_checkpoint("refiner.safetensors")
    seen = _UnetInputs()
    try:
        seen.watch(engine.model.unet)
        engine.generate(_request(steps=1, width=96, height=64))
        engine.apply_settings({"sdxl_refiner_high_aesthetic_score": 7.5, "sdxl_refiner_low_aesthetic_score": 1.0,
                               "sdxl_crop_top": 3, "sdxl_crop_left": 4}, save=False)
        engine.generate(_request(steps=1, width=96, height=64))
    finally:
        seen.close()
        engine.apply_settings({"sdxl_refiner_high_aesthetic_score": 6.0, "sdxl_refiner_low_aesthetic_score": 2.5,
                               "sdxl_crop_top": 0, "sdxl_crop_left": 0}, save=False)
        engine.select_checkpoint("base.safetensors")
    first, second = seen.calls[0], seen.calls[-1]
    # one UNet batch: the prompt's row, then the negative prompt's row (original h, w; crop top, left; aesthetic)
    assert first["time_ids"].tolist() == [[64, 96, 0, 0, 6.0], [64, 96, 0, 0, 2.5]]
    assert second["time_ids"].tolist() == [[64, 96, 3, 4, 7.5], [64, 96, 3, 4, 1.0]]
    assert first["context"] == (2, 77, tiny_models.TINY_TEXT_WIDTH)  # bigG's width alone, no CLIP-L beside it


def test_empty_negative_prompt_zeroes_the_text_but_keeps_the_low_score(engine):
    from modules.core import prompt_parser

    engine.select_checkpoint("refiner.safetensors")
    try:
        conditioner = engine.conditioner
        neg = conditioner.get_learned_conditioning(
            prompt_parser.SdConditioning([""], is_negative_prompt=True, width=96, height=64))
        pos = conditioner.get_learned_conditioning(prompt_parser.SdConditioning(["a cat"], width=96, height=64))
    finally:
        engine.select_checkpoint("base.safetensors")
    assert not neg["crossattn"].any() and not neg["pooled"].any()
    assert neg["time_ids"].tolist() == [[64, 96, 0, 0, 2.5]]
    assert pos["time_ids"].tolist() == [[64, 96, 0, 0, 6.0]] and pos["pooled"].abs().sum() > 0


def test_base_then_refiner_switches_encoders_and_time_ids(engine):
    plain = _pixels(engine.generate(_request()))
    seen = _UnetInputs()
    base_unet = engine.model.unet
    seen.watch(base_unet)
    try:
        processed = engine.generate(_request(refiner_checkpoint="refiner.safetensors", refiner_switch_at=0.5))
    finally:
        seen.close()
    refined = _pixels(processed)
    assert np.abs(plain - refined).mean() > 1.0
    params = infotext.parse_generation_parameters(processed.infotexts[0])
    assert params["Model"] == "base" and params["Refiner"].startswith("refiner [")
    assert engine.model.family == "sdxl" and engine.model.unet is base_unet  # back on the base model
    # the base's UNet ran the first half with SDXL's six size values and CLIP-L + bigG context
    base_calls = [c for c in seen.calls if not c["refiner"]]
    assert base_calls and all(c["time_ids"].shape == (2, 6) for c in base_calls)
    assert all(c["context"][-1] == 2 * tiny_models.TINY_TEXT_WIDTH for c in base_calls)
    assert len(base_calls) < 4  # the refiner took over for the rest of the steps


def test_refiner_after_base_equals_the_refiner_continuing_the_latent(engine):
    """Switch at 0 is a plain run on the refiner: the conditioning the switch computes is the refiner's own."""
    switched = _pixels(engine.generate(_request(refiner_checkpoint="refiner.safetensors", refiner_switch_at=0.0)))
    engine.select_checkpoint("refiner.safetensors")
    try:
        alone = _pixels(engine.generate(_request()))
    finally:
        engine.select_checkpoint("base.safetensors")
    assert np.array_equal(switched, alone)


def test_hires_pass_time_ids_hold_the_upscaled_size(engine):
    """A1111 computes the hires pass's conditioning at the upscaled size (calculate_hr_conds)."""
    engine.select_checkpoint("refiner.safetensors")
    seen = _UnetInputs()
    try:
        seen.watch(engine.model.unet)
        engine.generate(_request(steps=2, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=2,
                                 denoising_strength=0.5))
    finally:
        seen.close()
        engine.select_checkpoint("base.safetensors")
    sizes = [tuple(c["time_ids"][0, :2].tolist()) for c in seen.calls]
    assert sizes[0] == (64, 64) and sizes[-1] == (96, 96)
    assert {tuple(c["time_ids"][:, 4].tolist()) for c in seen.calls} == {(6.0, 2.5)}
