"""LoRA block weight (hako-mikan/sd-webui-lora-block-weight, unchanged) works through A1111's built-in Lora
extension names (``networks.loaded_networks``, ``lora.loaded_loras``, a module's ``up_model.weight``): a prompt's
``<lora:name:1:lbw=...>`` gives exactly the picture of the same LoRA with its blocks scaled by the test's own
per-block arithmetic, blocks weighted 0 are exactly "no LoRA there", and the weights are the plain ones after."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modules.core.request import GenerationRequest
from modules.scripting import runtime
from tests import network_files, tiny_models

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO.parent / "shared" / "fixtures" / "extensions" / "sd-webui-lora-block-weight"
pytestmark = pytest.mark.skipif(not FIXTURE.is_dir(), reason="the shared extension fixtures are not present")

BASE = dict(negative_prompt="", steps=2, width=64, height=64, cfg_scale=5.0, sampler_name="Euler", seed=77,
            do_not_save_samples=True, do_not_save_grid=True)
# BASE, IN00..IN11, M00, OUT00..OUT11 (the extension's 26 blocks); the tiny UNet has IN00..IN03, M00, OUT00..OUT03.
WEIGHTS = [0.5, 1, 0, 0.75, 1.5, 0.25] + [1] * 7 + [0] + [0.4, 1, 0, 2] + [1] * 8
LBW_WEIGHTS = ",".join(str(w) for w in WEIGHTS)
OUTD = [1] + [0] * 16 + [1] * 4 + [0] * 5  # the extension's 17-block OUTD preset in the 26 blocks: BASE, OUT03-OUT06


def block_index(module_key: str) -> int | None:
    """The block (index in the 26) of a kohya module key of the tiny SD1 model (one layer per down block, two
    down blocks), worked out here from the ldm layout; None for modules outside every block (time embedding,
    conv_out), which the extension leaves at weight 1."""
    if module_key.startswith("lora_te_"):
        return 0
    if module_key.startswith("lora_unet_conv_in"):
        return 1
    m = re.match(r"lora_unet_down_blocks_(\d+)_(resnets|attentions|downsamplers)_(\d+)_", module_key)
    if m:
        i, kind, j = int(m[1]), m[2], int(m[3])
        return 1 + 1 + 2 * i + (1 if kind == "downsamplers" else j)
    if module_key.startswith("lora_unet_mid_block_"):
        return 13
    m = re.match(r"lora_unet_up_blocks_(\d+)_(resnets|attentions|upsamplers)_(\d+)_", module_key)
    if m:
        i, kind, j = int(m[1]), m[2], int(m[3])
        return 14 + 2 * i + (1 if kind == "upsamplers" else j)
    return None


def block_weighted(tensors: dict[str, torch.Tensor], weights: list[float]) -> dict[str, torch.Tensor]:
    """The LoRA with each module's up matrix scaled by its block's weight; weight-0 modules left out."""
    out = {}
    for key, value in tensors.items():
        module = key.split(".", 1)[0]
        index = block_index(module)
        w = 1.0 if index is None else float(weights[index])
        if w == 0:
            continue
        out[key] = value * w if key.endswith("lora_up.weight") else value
    return out


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui
    from modules.settings import cmd_args

    data = tmp_path_factory.mktemp("lbw")
    components = tiny_models.tiny_sd1(seed=3)
    tiny_models.write_single_file(components, data / "models" / "Stable-diffusion" / "tiny.safetensors", "sd1")
    lora = network_files.kohya_lora(components, seed=1, scale=0.5)
    assert {block_index(k.split(".")[0]) for k in lora} == {None, 0, 1, 2, 3, 4, 13, 14, 15, 16, 17}
    network_files.save_safetensors(lora, data / "models" / "Lora" / "blk.safetensors")
    network_files.save_safetensors(block_weighted(lora, WEIGHTS), data / "models" / "Lora" / "blk_ref.safetensors")
    network_files.save_safetensors(block_weighted(lora, OUTD), data / "models" / "Lora" / "blk_outd.safetensors")
    shutil.copytree(FIXTURE, data / "extensions" / "sd-webui-lora-block-weight", ignore=shutil.ignore_patterns(".git"))
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    yield engine
    runtime.unbind(engine)


def _generate(engine, prompt: str, lbw_on: bool, **overrides) -> np.ndarray:
    req = GenerationRequest(prompt=prompt, alwayson_scripts={"LoRA Block Weight": {"args": [None, lbw_on]}},
                            **{**BASE, **overrides})
    out = runtime.host(engine).generate(req)
    assert out.warnings == [], out.warnings
    return np.asarray(out.images[0])


def _unet_state(engine) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in engine.model.unet.state_dict().items()}


def test_the_extension_loads_with_the_builtin_lora_names(engine):
    ext = runtime.host(engine).extensions.find("sd-webui-lora-block-weight")
    assert ext.errors == [] and ext.scripts_loaded
    assert runtime.host(engine).extensions.find("Lora").is_builtin


def test_block_weights_equal_the_lora_scaled_per_block_and_zero_blocks_equal_no_lora(engine):
    reference = _generate(engine, "a cat <lora:blk_ref:1>", lbw_on=False)
    weighted = _generate(engine, f"a cat <lora:blk:1:lbw={LBW_WEIGHTS}>", lbw_on=True)
    plain = _generate(engine, "a cat <lora:blk:1>", lbw_on=False)
    assert np.array_equal(weighted, reference)
    assert not np.array_equal(weighted, plain)


def test_a_preset_name_applies_its_weights(engine):
    weighted = _generate(engine, "a cat <lora:blk:1:lbw=OUTD>", lbw_on=True)
    assert np.array_equal(weighted, _generate(engine, "a cat <lora:blk_outd:1>", lbw_on=False))


def test_weights_are_exactly_the_plain_ones_after_a_block_weighted_generation(engine):
    _generate(engine, "a cat", lbw_on=False)
    clean = _unet_state(engine)
    plain = _generate(engine, "a cat <lora:blk:1>", lbw_on=False)
    with_lora = _unet_state(engine)
    _generate(engine, f"a cat <lora:blk:1:lbw={LBW_WEIGHTS}>", lbw_on=True)
    after = _unet_state(engine)
    assert all(torch.equal(after[k], with_lora[k]) for k in after)  # back to the tag's own weights
    assert np.array_equal(_generate(engine, "a cat <lora:blk:1>", lbw_on=False), plain)
    _generate(engine, "a cat", lbw_on=False)
    assert all(torch.equal(v, clean[k]) for k, v in _unet_state(engine).items())


def test_a_start_step_switches_the_lora_on_during_sampling(engine):
    """``start=`` sets the UNet multiplier to 0 at the first step and back later, from an on_cfg_denoiser
    callback (registered in the script's ``process``): the change is merged before the next UNet call."""
    full = _generate(engine, "a cat <lora:blk:1:lbw=ALL>", lbw_on=True, steps=4)
    started = _generate(engine, "a cat <lora:blk:1:lbw=ALL:start=2>", lbw_on=True, steps=4)
    text_only = _generate(engine, "a cat <lora:blk:1:0:lbw=ALL>", lbw_on=True, steps=4)
    assert not np.array_equal(started, full) and not np.array_equal(started, text_only)
