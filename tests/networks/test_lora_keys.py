"""modules.networks.lora_keys: LoRA/LyCORIS file keys -> modules of full-size (meta device) and tiny models."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from modules.models import checkpoint_detect as cd
from modules.models.checkpoint_loader import build_empty_models
from modules.models.ldm_export import unet_to_ldm
from modules.networks import sgm_blocks
from modules.networks.lora_keys import ConvertedNetwork, KeyMapper, ModuleTarget
from tests import tiny_models

MANIFESTS = Path("manifests") / "invokeai_stripped"
LOKR = Path("lora") / "lycoris_lokr_sd15" / "smart_falcon_4_lokr.safetensors"
POKEMON = Path("lora") / "diffusers_format" / "pokemon_attnprocs_pytorch_lora_weights.safetensors"


# ------------------------------------------------------------------------------------------------
# models (built once per module: full-size on the meta device, tiny with real weights)


def _full(family: str) -> dict:
    names = ["unet", "text_encoder"] + (["text_encoder_2"] if family == "sdxl" else [])
    models = build_empty_models({n: cd.shipped_config(family, n) for n in names})
    tes = [models[n] for n in names[1:]]
    return {"unet": models["unet"], "tes": tes, "mapper": KeyMapper(family, models["unet"], tes)}


@pytest.fixture(scope="module")
def sd1():
    return _full("sd1")


@pytest.fixture(scope="module")
def sdxl():
    return _full("sdxl")


def _tiny(family: str) -> dict:
    comps = {"sd1": tiny_models.tiny_sd1, "sd2": tiny_models.tiny_sd2, "sdxl": tiny_models.tiny_sdxl}[family]()
    tes = [comps["text_encoder"]] + ([comps["text_encoder_2"]] if "text_encoder_2" in comps else [])
    return {"unet": comps["unet"], "tes": tes, "mapper": KeyMapper(family, comps["unet"], tes)}


@pytest.fixture(scope="module")
def tiny_sd1():
    return _tiny("sd1")


@pytest.fixture(scope="module")
def tiny_sdxl():
    return _tiny("sdxl")


# ------------------------------------------------------------------------------------------------
# helpers


def _manifest(real: Path, name: str) -> dict[str, torch.Tensor]:
    entries = json.loads((real / MANIFESTS / name).read_text(encoding="utf-8"))
    return {k: torch.empty(v["shape"], device="meta") for k, v in entries.items()}


def _safetensors_meta(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}, f.metadata() or {}


def _ldm_unet_shapes(real: Path, name: str) -> dict[str, tuple[int, ...]]:
    """model.diffusion_model.* parameter shapes from an sd-mecha manifest (one 'key: {shape: [...]}' a line)."""
    rx = re.compile(r"^\s+model\.diffusion_model\.(\S+): \{shape: \[([\d, ]*)\]")
    out = {}
    for line in (real / "manifests" / "sd-mecha" / name).read_text(encoding="utf-8").splitlines():
        m = rx.match(line)
        if m:
            out[m[1]] = tuple(int(s) for s in m[2].split(",") if s.strip())
    return out


def _check_lora_shapes(mapper: KeyMapper, net: ConvertedNetwork) -> int:
    """Every LoRA group agrees with its target's weight: up rows = out, down cols = in, conv kernel."""
    checked = 0
    for target, group in net.groups.items():
        weight = mapper.target_module(target).weight
        up, down = group["lora_up.weight"].shape, group["lora_down.weight"].shape
        assert up[1] == down[0], target
        assert up[0] == weight.shape[0], (target, up, tuple(weight.shape))
        assert down[1] == weight.shape[1], (target, down, tuple(weight.shape))
        if weight.dim() == 4:
            assert tuple(down[2:]) == tuple(weight.shape[2:]) and tuple(up[2:]) == (1, 1), target
        else:
            assert len(up) == len(down) == 2, target
        if "alpha" in group:
            assert tuple(group["alpha"].shape) == (), target
        checked += 1
    return checked


def _modules_in_file(keys) -> list[str]:
    return list(dict.fromkeys(k.split(".", 1)[0] for k in keys))


# ------------------------------------------------------------------------------------------------
# real files


def test_sd15_kohya_lora_maps_every_key(sd1, real_fixtures):
    sd = _manifest(real_fixtures, "sd15_kohya_lora_shinkai_makoto_offset.keys.json")
    net = sd1["mapper"].convert(sd)
    assert net.unmatched == []
    assert net.format == "kohya"
    assert len(net.groups) == len(_modules_in_file(sd)) == 264
    assert _check_lora_shapes(sd1["mapper"], net) == 264
    assert sum(t.is_text_encoder for t in net.groups) == 12 * 6
    assert {t.component for t in net.groups} == {"unet", "te1"}
    assert all(set(g) == {"alpha", "lora_up.weight", "lora_down.weight"} for g in net.groups.values())
    # values are passed through untouched
    key = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"
    target = ModuleTarget("unet", "mid_block.attentions.0.transformer_blocks.0.attn2.to_k")
    assert net.groups[target]["lora_down.weight"] is sd[key]
    assert ModuleTarget("te1", "encoder.layers.0.mlp.fc1") in net.groups


def test_sdxl_kohya_lora_maps_every_key(sdxl, real_fixtures):
    sd = _manifest(real_fixtures, "sdxl_kohya_lora_Alien_Style.keys.json")
    net = sdxl["mapper"].convert(sd)
    assert net.unmatched == []
    assert net.format == "kohya (sgm names)"
    assert len(net.groups) == len(_modules_in_file(sd)) == 986
    assert _check_lora_shapes(sdxl["mapper"], net) == 986
    te1 = [t for t in net.groups if t.component == "te1"]
    te2 = [t for t in net.groups if t.component == "te2"]
    assert len(te1) == 12 * 6 and len(te2) == 32 * 6
    assert all(t.path.startswith("encoder.layers.") for t in te1)          # flattened CLIPTextModel
    assert all(t.path.startswith("text_model.encoder.layers.") for t in te2)  # CLIPTextModelWithProjection
    assert ModuleTarget("unet", "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_out.0") in net.groups


def test_lycoris_lokr_sd15_maps_every_key(sd1, real_fixtures):
    sd, meta = _safetensors_meta(real_fixtures / LOKR)
    net = sd1["mapper"].convert(sd, meta)
    assert net.unmatched == []
    assert net.format == "lycoris lokr (kohya)"
    assert len(net.groups) == len(_modules_in_file(sd)) == 350
    for target, g in net.groups.items():
        assert set(g) == {"alpha", "lokr_w1_a", "lokr_w1_b", "lokr_w2_a", "lokr_w2_b"}
        weight = sd1["mapper"].target_module(target).weight
        rows = g["lokr_w1_a"].shape[0] * g["lokr_w2_a"].shape[0]
        cols = g["lokr_w1_b"].shape[1] * g["lokr_w2_b"].shape[1]
        assert (rows, cols) == (weight.shape[0], math.prod(weight.shape[1:])), target
    convs = [t for t in net.groups if sd1["mapper"].target_module(t).weight.dim() == 4]
    assert ModuleTarget("unet", "down_blocks.0.downsamplers.0.conv") in convs
    assert ModuleTarget("unet", "up_blocks.3.resnets.0.conv_shortcut") in convs


def test_old_diffusers_attention_processor_file_maps_every_key(sd1, real_fixtures):
    sd, _ = _safetensors_meta(real_fixtures / POKEMON)
    net = sd1["mapper"].convert(sd)
    assert net.unmatched == []
    assert net.format == "diffusers (old attention processors)"
    assert len(net.groups) == 16 * 2 * 4 == len(sd) // 2
    assert _check_lora_shapes(sd1["mapper"], net) == 128
    assert {t.path.rsplit(".", 1)[-1] for t in net.groups} == {"to_q", "to_k", "to_v", "0"}
    key = "up_blocks.3.attentions.2.transformer_blocks.0.attn2.processor.to_out_lora.up.weight"
    target = ModuleTarget("unet", "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_out.0")
    assert net.groups[target]["lora_up.weight"] is sd[key]


@pytest.mark.parametrize("family,manifest", [("sd1", "sd1-ldm.yaml"), ("sdxl", "sdxl-sgm.yaml")])
def test_every_ldm_unet_parameter_of_a_real_checkpoint_finds_its_module(family, manifest, request, real_fixtures):
    """The ldm/sgm block map against a real single-file checkpoint: each ldm parameter (in dotted
    ComfyUI form and in flat kohya form) lands on a diffusers module whose parameter has its shape."""
    model = request.getfixturevalue(family)
    mapper = model["mapper"]
    shapes = _ldm_unet_shapes(real_fixtures, manifest)
    assert len(shapes) > 600
    modules = set()
    for key, shape in shapes.items():
        hit = mapper.resolve("diffusion_model." + key)
        assert hit is not None, key
        target, param = hit
        assert target.component == "unet"
        assert tuple(getattr(mapper.target_module(target), param).shape) == shape, key
        module = key.rpartition(".")[0]
        assert mapper.resolve(f"lora_unet_{module.replace('.', '_')}.lora_down.weight") == (target, "lora_down.weight")
        modules.add(target.path)
    unet_modules = {n for n, m in model["unet"].named_modules() if n and any(True for _ in m.parameters(recurse=False))}
    assert modules == unet_modules  # and every diffusers module has an ldm name


# ------------------------------------------------------------------------------------------------
# ldm/sgm block names


SDXL_SPOTS = {
    "input_blocks_4_1_transformer_blocks_0_attn1_to_k": "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k",
    "input_blocks_8_1_transformer_blocks_9_attn2_to_out_0": "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_out.0",
    "input_blocks_7_1_proj_in": "down_blocks.2.attentions.0.proj_in",
    "input_blocks_0_0": "conv_in",
    "input_blocks_1_0_in_layers_0": "down_blocks.0.resnets.0.norm1",
    "input_blocks_1_0_in_layers_2": "down_blocks.0.resnets.0.conv1",
    "input_blocks_2_0_emb_layers_1": "down_blocks.0.resnets.1.time_emb_proj",
    "input_blocks_4_0_out_layers_0": "down_blocks.1.resnets.0.norm2",
    "input_blocks_4_0_out_layers_3": "down_blocks.1.resnets.0.conv2",
    "input_blocks_4_0_skip_connection": "down_blocks.1.resnets.0.conv_shortcut",
    "input_blocks_3_0_op": "down_blocks.0.downsamplers.0.conv",
    "input_blocks_6_0_op": "down_blocks.1.downsamplers.0.conv",
    "middle_block_0_in_layers_2": "mid_block.resnets.0.conv1",
    "middle_block_1_transformer_blocks_9_ff_net_0_proj": "mid_block.attentions.0.transformer_blocks.9.ff.net.0.proj",
    "middle_block_2_emb_layers_1": "mid_block.resnets.1.time_emb_proj",
    "output_blocks_0_0_skip_connection": "up_blocks.0.resnets.0.conv_shortcut",
    "output_blocks_2_1_proj_out": "up_blocks.0.attentions.2.proj_out",
    "output_blocks_2_2_conv": "up_blocks.0.upsamplers.0.conv",
    "output_blocks_5_2_conv": "up_blocks.1.upsamplers.0.conv",
    "output_blocks_8_0_out_layers_3": "up_blocks.2.resnets.2.conv2",
    "out_0": "conv_norm_out",
    "out_2": "conv_out",
    "time_embed_0": "time_embedding.linear_1",
    "time_embed_2": "time_embedding.linear_2",
    "label_emb_0_0": "add_embedding.linear_1",
    "label_emb_0_2": "add_embedding.linear_2",
}

SD1_SPOTS = {
    "input_blocks_1_1_proj_in": "down_blocks.0.attentions.0.proj_in",
    "input_blocks_4_1_transformer_blocks_0_attn1_to_k": "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k",
    "input_blocks_9_0_op": "down_blocks.2.downsamplers.0.conv",
    "input_blocks_11_0_in_layers_2": "down_blocks.3.resnets.1.conv1",
    "middle_block_1_proj_out": "mid_block.attentions.0.proj_out",
    "output_blocks_2_1_conv": "up_blocks.0.upsamplers.0.conv",   # up block 0 has no attention
    "output_blocks_5_2_conv": "up_blocks.1.upsamplers.0.conv",
    "output_blocks_8_2_conv": "up_blocks.2.upsamplers.0.conv",
    "output_blocks_11_1_transformer_blocks_0_attn2_to_v": "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_v",
    "output_blocks_3_0_skip_connection": "up_blocks.1.resnets.0.conv_shortcut",
    "input_blocks_0_0": "conv_in",
    "out_2": "conv_out",
    "time_embed_2": "time_embedding.linear_2",
}


def test_sgm_spot_checks_sdxl(sdxl):
    mapper = sdxl["mapper"]
    for ldm, path in SDXL_SPOTS.items():
        want = (ModuleTarget("unet", path), "lora_down.weight")
        assert mapper.resolve(f"lora_unet_{ldm}.lora_down.weight") == want, ldm
        assert mapper.resolve(f"diffusion_model_{ldm}.lora_down.weight") == want, ldm
        mapper.target_module(want[0])  # exists
    dotted = "diffusion_model.input_blocks.4.1.transformer_blocks.0.attn1.to_k.lokr_w1"
    want = ModuleTarget("unet", SDXL_SPOTS["input_blocks_4_1_transformer_blocks_0_attn1_to_k"])
    assert mapper.resolve(dotted) == (want, "lokr_w1")
    assert mapper.resolve("model.diffusion_model.label_emb.0.0.hada_w1_a") == (
        ModuleTarget("unet", "add_embedding.linear_1"), "hada_w1_a")
    net = mapper.convert({"diffusion_model.out.2.diff": 1, "diffusion_model.out.2.diff_b": 2})
    assert net.format == "lycoris full (ldm)" and net.unmatched == []
    assert net.groups == {ModuleTarget("unet", "conv_out"): {"diff": 1, "diff_b": 2}}


def test_sgm_spot_checks_sd1_and_ldm_names_equal_diffusers_names(sd1):
    mapper = sd1["mapper"]
    for ldm, path in SD1_SPOTS.items():
        assert mapper.resolve(f"lora_unet_{ldm}.alpha") == (ModuleTarget("unet", path), "alpha"), ldm
    blocks = sgm_blocks.block_map(sd1["unet"].config)
    count = 0
    for name, module in sd1["unet"].named_modules():
        if not name or not any(True for _ in module.parameters(recurse=False)):
            continue
        ldm = sgm_blocks.diffusers_to_ldm(name, blocks)
        assert ldm is not None, name
        want = (ModuleTarget("unet", name), "lora_up.weight")
        assert mapper.resolve(f"lora_unet_{name.replace('.', '_')}.lora_up.weight") == want
        assert mapper.resolve(f"lora_unet_{ldm.replace('.', '_')}.lora_up.weight") == want
        assert mapper.resolve(f"diffusion_model.{ldm}.lora_up.weight") == want
        assert mapper.resolve(f"unet.{name}.lora_up.weight") == want
        count += 1
    assert count == 391  # every parameter-owning module of the SD1.5 UNet
    net = mapper.convert({"lora_unet_input_blocks_1_1_proj_in.lora_up.weight": 0,
                          "lora_unet_down_blocks_0_attentions_0_proj_out.lora_up.weight": 0})
    assert net.format == "kohya (sgm names)"  # mixed: the sgm names decide the label


@pytest.mark.parametrize("which", ["tiny_sd1", "tiny_sdxl", "sd1", "sdxl"])
def test_block_map_agrees_with_the_single_file_exporter(which, request):
    """Same ldm names as modules.ldm_export (written independently) for every UNet parameter."""
    unet = request.getfixturevalue(which)["unet"]
    blocks = sgm_blocks.block_map(unet.config)
    names = [n for n, _ in unet.named_parameters()]
    exported = unet_to_ldm({n: None for n in names}, unet.config, prefix="")
    mine = [sgm_blocks.diffusers_to_ldm(n.rpartition(".")[0], blocks) + "." + n.rpartition(".")[2] for n in names]
    assert mine == list(exported)


def test_no_ambiguous_flat_names(sd1, sdxl, tiny_sd1, tiny_sdxl):
    for model in (sd1, sdxl, tiny_sd1, tiny_sdxl):
        assert model["mapper"].ambiguous == set()


# ------------------------------------------------------------------------------------------------
# text encoders


def test_text_encoder_prefixes_sdxl(sdxl):
    mapper = sdxl["mapper"]
    assert mapper.resolve("lora_te1_text_model_encoder_layers_11_self_attn_out_proj.lora_up.weight") == (
        ModuleTarget("te1", "encoder.layers.11.self_attn.out_proj"), "lora_up.weight")
    assert mapper.resolve("lora_te2_text_model_encoder_layers_31_mlp_fc2.alpha") == (
        ModuleTarget("te2", "text_model.encoder.layers.31.mlp.fc2"), "alpha")
    assert mapper.resolve("lora_te2_text_projection.lora_up.weight") == (
        ModuleTarget("te2", "text_projection"), "lora_up.weight")
    # SD1 naming on SDXL matches nothing (as in the reference UI)
    assert mapper.resolve("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight") is None
    # ComfyUI names
    comfy = "text_encoders.{}.transformer.text_model.encoder.layers.3.mlp.fc1.lora_down.weight"
    assert mapper.resolve(comfy.format("clip_g")) == (
        ModuleTarget("te2", "text_model.encoder.layers.3.mlp.fc1"), "lora_down.weight")
    assert mapper.resolve(comfy.format("clip_l")) == (ModuleTarget("te1", "encoder.layers.3.mlp.fc1"), "lora_down.weight")
    assert mapper.target_module(ModuleTarget("te2", "text_projection")) is sdxl["tes"][1].text_projection


def test_text_encoder_prefixes_sd1(sd1):
    mapper = sd1["mapper"]
    want = (ModuleTarget("te1", "encoder.layers.5.self_attn.q_proj"), "lora_down.weight")
    assert mapper.resolve("lora_te_text_model_encoder_layers_5_self_attn_q_proj.lora_down.weight") == want
    assert mapper.resolve("lora_te1_text_model_encoder_layers_5_self_attn_q_proj.lora_down.weight") == want  # fallback
    assert mapper.resolve("lora_te2_text_model_encoder_layers_5_self_attn_q_proj.lora_down.weight") is None
    assert mapper.resolve("text_encoders.clip_g.transformer.text_model.encoder.layers.5.mlp.fc1.lora_A.weight") is None
    assert want[0].is_text_encoder and not ModuleTarget("unet", "conv_in").is_text_encoder
    with pytest.raises(KeyError, match="te2"):
        mapper.target_module(ModuleTarget("te2", "text_model.encoder.layers.0.mlp.fc1"))


def test_tiny_sd2_text_encoder():
    model = _tiny("sd2")
    mapper, te = model["mapper"], model["tes"][0]
    sd = {}
    for name, module in te.named_modules():
        if isinstance(module, torch.nn.Linear):
            flat = ("text_model." + name if not name.startswith("text_model.") else name).replace(".", "_")
            sd[f"lora_te_{flat}.lora_down.weight"] = torch.zeros(2, module.in_features)
            sd[f"lora_te_{flat}.lora_up.weight"] = torch.zeros(module.out_features, 2)
    assert len(sd) == 2 * 2 * 6  # two layers of q, k, v, out, fc1, fc2
    net = mapper.convert(sd)
    assert net.unmatched == [] and net.format == "kohya"
    assert all(t.component == "te1" for t in net.groups) and len(net.groups) == 12
    assert _check_lora_shapes(mapper, net) == 12
    fc2 = te.get_submodule("encoder.layers.1.mlp.fc2")
    assert mapper.target_module(ModuleTarget("te1", "encoder.layers.1.mlp.fc2")) is fc2


# ------------------------------------------------------------------------------------------------
# wrong model, unknown keys, embeddings


def test_sdxl_lora_on_sd1_lists_unmatched_in_file_order(sd1, real_fixtures):
    sd = _manifest(real_fixtures, "sdxl_kohya_lora_Alien_Style.keys.json")
    net = sd1["mapper"].convert(sd)
    expected = [k for k in sd if sd1["mapper"].resolve(k) is None]
    assert net.unmatched == expected
    assert len(net.unmatched) > len(sd) // 2
    first_te2 = next(k for k in sd if k.startswith("lora_te2_"))
    assert net.unmatched[0] == first_te2
    assert all(k in net.unmatched for k in sd if k.startswith("lora_te2_"))
    assert "lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_k.lora_down.weight" in net.unmatched
    # what does match (CLIP-L, transformer block 0 of levels SD1 also has) is grouped
    assert ModuleTarget("te1", "encoder.layers.0.mlp.fc1") in net.groups


def test_unknown_keys_never_raise(sd1):
    sd = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": object(),  # values never read
        "lora_unet_no_such_module.lora_down.weight": 1,
        "lora_unet_down_blocks_0.lora_down.weight": 2,        # a container, not a layer
        "lora_unet_down_blocks_0_attentions_0_proj_in": 3,     # no param part
        "": 4,
        "unet.": 5,
        "text_encoder_2.text_model.encoder.layers.0.mlp.fc1.lora_A.weight": 6,  # SD1 has no te2
        "lora_te3_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": 7,
        "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": 8,
        ("not", "a", "string"): 9,
    }
    net = sd1["mapper"].convert(sd)
    assert net.unmatched == list(sd)[1:]
    assert list(net.groups) == [ModuleTarget("unet", "down_blocks.0.attentions.0.proj_in")]
    assert net.format == "kohya"
    empty = sd1["mapper"].convert({})
    assert (empty.groups, empty.unmatched, empty.embeddings, empty.format) == ({}, [], {}, "unknown")


def test_bundled_embeddings(sd1):
    a, b, c, d = (torch.zeros(1, 768), torch.zeros(2, 768), torch.zeros(2, 1280), torch.zeros(1))
    net = sd1["mapper"].convert({
        "bundle_emb.my-style.string_to_param.*": a,
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": d,
        "bundle_emb.other.clip_l": b,
        "bundle_emb.other.clip_g": c,
        "bundle_emb.broken": d,
    })
    assert net.embeddings == {"my-style": {"string_to_param.*": a}, "other": {"clip_l": b, "clip_g": c}}
    assert net.unmatched == ["bundle_emb.broken"]
    assert list(net.groups) == [ModuleTarget("te1", "encoder.layers.0.mlp.fc1")]


# ------------------------------------------------------------------------------------------------
# PEFT / diffusers formats


def _lora_layers(module: torch.nn.Module):
    for name, m in module.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            yield name, m


def _peft_state_dict(model: dict, rank: int = 2, te_prefix_text_model: bool = True) -> tuple[dict, dict]:
    """A PEFT/diffusers file for every Linear/Conv2d: keys as diffusers writes them, and the
    expected target per (file module name)."""
    sd, targets = {}, {}
    comps = [("unet", "unet", model["unet"])] + [
        (p, c, te) for (p, c), te in zip((("text_encoder", "te1"), ("text_encoder_2", "te2")), model["tes"])]
    for prefix, component, module in comps:
        for name, m in _lora_layers(module):
            file_name = name
            if component != "unet" and te_prefix_text_model and not name.startswith("text_model."):
                file_name = "text_model." + name  # diffusers files say text_model.*
            if isinstance(m, torch.nn.Conv2d):
                a = torch.randn(rank, m.in_channels, *m.kernel_size)
                b = torch.randn(m.out_channels, rank, 1, 1)
            else:
                a, b = torch.randn(rank, m.in_features), torch.randn(m.out_features, rank)
            sd[f"{prefix}.{file_name}.lora_A.weight"] = a
            sd[f"{prefix}.{file_name}.lora_B.weight"] = b
            targets[f"{prefix}.{file_name}"] = ModuleTarget(component, name)
    return sd, targets


@pytest.mark.parametrize("with_text_model", [True, False])
def test_peft_round_trip_tiny_sdxl(tiny_sdxl, with_text_model):
    mapper = tiny_sdxl["mapper"]
    sd, targets = _peft_state_dict(tiny_sdxl, te_prefix_text_model=with_text_model)
    net = mapper.convert(sd)
    assert net.unmatched == []
    assert net.format == "peft"
    assert set(net.groups) == set(targets.values())
    assert {c.component for c in net.groups} == {"unet", "te1", "te2"}
    for file_module, target in targets.items():
        g = net.groups[target]
        assert set(g) == {"lora_down.weight", "lora_up.weight"}  # no alpha information: scale 1
        assert g["lora_down.weight"] is sd[file_module + ".lora_A.weight"]
        assert g["lora_up.weight"] is sd[file_module + ".lora_B.weight"]
    assert _check_lora_shapes(mapper, net) == len(targets)


def test_peft_alphas_from_diffusers_metadata(tiny_sd1):
    mapper = tiny_sd1["mapper"]
    sd, targets = _peft_state_dict(tiny_sd1, rank=4)
    sd["unet.conv_out.alpha"] = torch.tensor(1.0)  # an explicit alpha wins over the metadata
    meta = {"format": "pt", "lora_adapter_metadata": json.dumps({
        "unet.r": 4, "unet.lora_alpha": 8, "unet.alpha_pattern": {"conv_in": 2, "attn2.to_k": 3},
        "text_encoder.r": 4, "text_encoder.lora_alpha": 6, "text_encoder.use_rslora": True})}
    net = mapper.convert(sd, meta)
    assert net.unmatched == []
    alpha = {t: float(g["alpha"]) for t, g in net.groups.items()}
    assert set(alpha) == set(targets.values())
    assert alpha[ModuleTarget("unet", "conv_in")] == 2.0
    assert alpha[ModuleTarget("unet", "conv_out")] == 1.0
    assert alpha[ModuleTarget("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k")] == 3.0
    assert alpha[ModuleTarget("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v")] == 8.0
    # rsLoRA: alpha / rank downstream must equal lora_alpha / sqrt(rank) = 6 / 2
    te_alpha = alpha[ModuleTarget("te1", "encoder.layers.0.self_attn.q_proj")]
    assert te_alpha / 4 == pytest.approx(6 / 2)
    # a model-level save (unprefixed config) applies to every component
    net2 = mapper.convert(sd, {"lora_adapter_metadata": {"r": 4, "lora_alpha": 2}})
    assert float(net2.groups[ModuleTarget("te1", "encoder.layers.1.mlp.fc2")]["alpha"]) == 2.0
    assert float(net2.groups[ModuleTarget("unet", "conv_out")]["alpha"]) == 1.0
    # a per-component metadata key
    net4 = mapper.convert(sd, {"text_encoder.lora_adapter_metadata": json.dumps({"r": 4, "lora_alpha": 2})})
    assert float(net4.groups[ModuleTarget("te1", "encoder.layers.1.mlp.fc2")]["alpha"]) == 2.0
    assert "alpha" not in net4.groups[ModuleTarget("unet", "conv_in")]
    # unreadable metadata is ignored
    net3 = mapper.convert(sd, {"lora_adapter_metadata": "{not json"})
    assert "alpha" not in net3.groups[ModuleTarget("unet", "conv_in")]


def test_peft_dora_magnitude_and_prefixes(tiny_sd1):
    mapper = tiny_sd1["mapper"]
    lin = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    conv = "down_blocks.0.resnets.0.conv1"
    lin_w = mapper.target_module(ModuleTarget("unet", lin)).weight
    conv_w = mapper.target_module(ModuleTarget("unet", conv)).weight
    mag_lin = torch.arange(lin_w.shape[0], dtype=torch.float32)
    mag_conv = torch.arange(conv_w.shape[0], dtype=torch.float32).reshape(1, -1, 1, 1)
    sd = {
        f"base_model.model.{lin}.lora_A.weight": torch.zeros(2, lin_w.shape[1]),
        f"base_model.model.{lin}.lora_B.weight": torch.zeros(lin_w.shape[0], 2),
        f"base_model.model.{lin}.lora_magnitude_vector": mag_lin,
        f"unet.{conv}.lora_A.default.weight": torch.zeros(2, conv_w.shape[1], 3, 3),
        f"unet.{conv}.lora_B.default.weight": torch.zeros(conv_w.shape[0], 2, 1, 1),
        f"unet.{conv}.lora_B.default.bias": torch.zeros(conv_w.shape[0]),
        f"unet.{conv}.lora_magnitude_vector.default.weight": mag_conv,
    }
    net = mapper.convert(sd)
    assert net.unmatched == [] and net.format == "peft with DoRA"
    g_lin = net.groups[ModuleTarget("unet", lin)]
    g_conv = net.groups[ModuleTarget("unet", conv)]
    assert set(g_lin) == {"lora_down.weight", "lora_up.weight", "dora_scale"}
    assert set(g_conv) == {"lora_down.weight", "lora_up.weight", "lora_up.bias", "dora_scale"}
    assert g_lin["dora_scale"].shape == (lin_w.shape[0], 1)
    assert torch.equal(g_lin["dora_scale"].flatten(), mag_lin)
    assert g_conv["dora_scale"].shape == (conv_w.shape[0], 1, 1, 1)
    assert torch.equal(g_conv["dora_scale"].flatten(), mag_conv.flatten())


def test_older_diffusers_formats(tiny_sd1):
    mapper = tiny_sd1["mapper"]
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    sd = {
        f"unet.{attn}.to_k.lora.down.weight": 1,
        f"unet.{attn}.to_k.lora.up.weight": 2,
        f"unet.{attn}.processor.to_out_lora.down.weight": 3,
        "text_encoder.text_model.encoder.layers.1.self_attn.to_q_lora.down.weight": 4,
        "text_encoder.text_model.encoder.layers.1.self_attn.to_out_lora.up.weight": 5,
        "text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_linear_layer.down.weight": 6,
    }
    net = mapper.convert(sd)
    assert net.unmatched == []
    assert net.groups == {
        ModuleTarget("unet", f"{attn}.to_k"): {"lora_down.weight": 1, "lora_up.weight": 2},
        ModuleTarget("unet", f"{attn}.to_out.0"): {"lora_down.weight": 3},
        ModuleTarget("te1", "encoder.layers.1.self_attn.q_proj"): {"lora_down.weight": 4},
        ModuleTarget("te1", "encoder.layers.1.self_attn.out_proj"): {"lora_up.weight": 5},
        ModuleTarget("te1", "encoder.layers.0.mlp.fc1"): {"lora_down.weight": 6},
    }
    assert net.format == "diffusers (old lora layers) + diffusers (old attention processors)"


def test_kohya_lycoris_params_pass_through(tiny_sdxl):
    mapper = tiny_sdxl["mapper"]
    names = ["hada_w1_a", "hada_t1", "dora_scale", "scale", "bias", "lora_mid.weight", "oft_blocks", "w_norm",
             "b_norm", "a1.weight", "weight", "on_input"]
    # tiny SDXL: one layer per block, so the first transformer sits at input_blocks.3.1
    sd = {f"lora_unet_input_blocks_3_1_proj_in.{n}": i for i, n in enumerate(names)}
    sd["oft_unet_input_blocks_3_1_proj_out.oft_blocks"] = "x"
    sd["lora_unet_input_blocks_3_0_in_layers_2.lora_A.weight"] = "a"  # read as lora_down by the reference UI
    sd["lora_unet_input_blocks_3_0_in_layers_2.lora_B.weight"] = "b"
    net = mapper.convert(sd)
    assert net.unmatched == []
    assert net.groups[ModuleTarget("unet", "down_blocks.1.attentions.0.proj_in")] == {n: i for i, n in enumerate(names)}
    assert net.groups[ModuleTarget("unet", "down_blocks.1.attentions.0.proj_out")] == {"oft_blocks": "x"}
    assert net.groups[ModuleTarget("unet", "down_blocks.1.resnets.0.conv1")] == {"lora_down.weight": "a",
                                                                                  "lora_up.weight": "b"}
    assert net.format.startswith("lycoris loha+locon-cp+oft+norm+glora+ia3 (kohya (sgm names))")


def test_keymapper_rejects_unknown_family(tiny_sd1):
    with pytest.raises(ValueError, match="sd3"):
        KeyMapper("sd3", tiny_sd1["unet"], tiny_sd1["tes"])
