"""Every real LoRA/LyCORIS file and key list of the shared fixtures goes through the loader: it loads on the
model family it was made for (full-size architectures on the meta device) and is refused, with a message that
names the format and the keys at fault, on the other."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from modules.models import checkpoint_detect as cd
from modules.models.checkpoint_loader import build_empty_models
from modules.networks import lora_file
from modules.networks.adapters import create_module
from modules.networks.lora_keys import KeyMapper

LOKR = Path("lora") / "lycoris_lokr_sd15" / "smart_falcon_4_lokr.safetensors"
POKEMON = Path("lora") / "diffusers_format" / "pokemon_attnprocs_pytorch_lora_weights.safetensors"
MANIFESTS = Path("manifests") / "invokeai_stripped"


def _mapper(family: str) -> KeyMapper:
    names = ["unet", "text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    models = build_empty_models({n: cd.shipped_config(family, n) for n in names})
    return KeyMapper(family, models["unet"], [models[n] for n in names[1:]])


@pytest.fixture(scope="module")
def sd1():
    return _mapper("sd1")


@pytest.fixture(scope="module")
def sdxl():
    return _mapper("sdxl")


def test_real_lokr_file_loads_on_sd1_with_every_module_a_lokr(real_fixtures, sd1):
    net = lora_file.load_lora(real_fixtures / LOKR, sd1, family="SD1")
    assert len(net.modules) == 350
    assert {m.kind for m in net.modules.values()} == {"lokr"}
    assert "lokr" in net.format and "kohya" in net.format
    assert net.metadata["sshs_model_hash"].startswith("150ef207aad0")
    te = [t for t in net.modules if t.is_text_encoder]
    assert te and all(t.component == "te1" for t in te)


def test_real_old_attention_processor_lora_loads_on_sd1(real_fixtures, sd1):
    net = lora_file.load_lora(real_fixtures / POKEMON, sd1)
    assert net.format == "diffusers (old attention processors)"
    assert len(net.modules) == 128
    paths = {t.path for t in net.modules}
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q" in paths
    assert "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0" in paths
    assert {m.kind for m in net.modules.values()} == {"lora"}


@pytest.mark.parametrize("name", [LOKR, POKEMON])
def test_sd1_files_are_refused_on_sdxl_naming_format_and_keys(real_fixtures, sdxl, name):
    with pytest.raises(lora_file.NetworkLoadError) as info:
        lora_file.load_lora(real_fixtures / name, sdxl, family="SD1")
    message = str(info.value)
    assert str(name.name) in message
    assert "format" in message and "match no module" in message or "cannot be applied" in message
    if name == LOKR:
        assert "(the file is for SD1, the loaded model is SDXL)" in message
        assert "lora_te_text_model_encoder_layers_0" in message


@pytest.mark.parametrize("manifest, family", [
    ("sd15_kohya_lora_shinkai_makoto_offset.keys.json", "sd1"),
    ("sdxl_kohya_lora_Alien_Style.keys.json", "sdxl"),
])
def test_real_key_lists_build_adapters_whose_deltas_fit_their_targets(real_fixtures, sd1, sdxl, manifest, family):
    """The key lists hold names and shapes only: tensors on the meta device go through the same checks as a file."""
    mapper = sd1 if family == "sd1" else sdxl
    keys = json.loads((real_fixtures / MANIFESTS / manifest).read_text())
    # Scalars (alpha) are read as numbers when a module is built: give them a real value.
    state = {k: torch.empty(v["shape"], device="meta") if v["shape"] else torch.tensor(4.0) for k, v in keys.items()}
    converted = mapper.convert(state)
    assert converted.unmatched == []
    for target, tensors in converted.groups.items():
        module = create_module(target.path, tensors)
        assert module.kind == "lora" and module.alpha == 4.0
        lora_file._check_shape(module, mapper.target_module(target))
    assert len(converted.groups) == {"sd1": 264, "sdxl": 986}[family]


def test_a_module_that_does_not_fit_refuses_the_whole_file(tmp_path):
    from tests import network_files, tiny_models

    comps = tiny_models.tiny_sd1()
    state = network_files.kohya_lora(comps, seed=0)
    key = next(k for k in state if k.endswith("attn2_to_k.lora_up.weight"))
    state[key] = torch.randn(state[key].shape[0] + 3, state[key].shape[1])
    path = network_files.save_safetensors(state, tmp_path / "bad_shape.safetensors")
    mapper = KeyMapper("sd1", comps["unet"], [comps["text_encoder"]])
    with pytest.raises(lora_file.NetworkLoadError, match=r"bad_shape.*1 of \d+ modules cannot be applied"):
        lora_file.load_lora(path, mapper)


@pytest.mark.parametrize("family", ["sd2", "sdxl"])
def test_kohya_lora_merges_into_every_encoder_and_the_unet_of_other_families(tmp_path, family):
    """ΔW = m · alpha/rank · up @ down lands on the right module of each component, and restores bitwise."""
    from modules.networks.weight_patcher import Contribution, WeightPatcher
    from tests import network_files, tiny_models

    comps = {"sd2": tiny_models.tiny_sd2, "sdxl": tiny_models.tiny_sdxl}[family]()
    encoders = [comps["text_encoder"]] + ([comps["text_encoder_2"]] if "text_encoder_2" in comps else [])
    state = network_files.kohya_lora(comps, rank=3, alpha=1.5, seed=5)
    path = network_files.save_safetensors(state, tmp_path / "x.safetensors")
    mapper = KeyMapper(family, comps["unet"], encoders)
    net = lora_file.load_lora(path, mapper)
    assert len(net.modules) == len({k.split(".")[0] for k in state})
    components = {t.component for t in net.modules}
    assert components == ({"unet", "te1", "te2"} if family == "sdxl" else {"unet", "te1"})
    originals = {t: mapper.target_module(t).weight.detach().clone() for t in net.modules}
    WeightPatcher().apply({mapper.target_module(t): [Contribution(net.key, m, 0.6)] for t, m in net.modules.items()})
    checked = 0
    for key in [k for k in state if k.endswith(".lora_up.weight")][::7]:
        prefix = key[: -len(".lora_up.weight")]
        target = mapper.resolve(prefix + ".lora_up.weight")[0]
        up, down = state[prefix + ".lora_up.weight"], state[prefix + ".lora_down.weight"]
        expected_delta = 0.6 * 1.5 / 3 * (up.flatten(1) @ down.flatten(1)).reshape(originals[target].shape)
        got = mapper.target_module(target).weight
        assert torch.allclose(got, originals[target] + expected_delta, atol=1e-6), prefix
        checked += 1
    assert checked > 5
