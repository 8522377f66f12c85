"""Shipped configs and tokenizer files, key normalisation, family detection, config inference."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from modules.models import checkpoint_detect as cd
from modules.models.checkpoint_loader import TOKENIZER_DIR, load_tokenizer
from modules.models.ldm_export import components_to_ldm
from tests.models.test_ldm_keys_real import meta_state_dict, read_key_manifest
from tests.tiny_models import tiny_sd1, tiny_sd2, tiny_sdxl

# --- shipped configs equal the real repositories' files ---------------------------------------

REAL = {"sd1": "sd15", "sdxl": "sdxl"}
COMPONENTS = {"sd1": ["unet", "vae", "text_encoder", "scheduler"],
              "sdxl": ["unet", "vae", "text_encoder", "text_encoder_2", "scheduler"]}
_NOT_PARAMETERS = {"_class_name", "_diffusers_version", "_name_or_path", "_commit_hash", "transformers_version",
                   "torch_dtype", "dtype", "architectures"}


def _real_config(real_fixtures, family, component):
    sub = "scheduler/scheduler_config.json" if component == "scheduler" else f"{component}/config.json"
    return json.loads((real_fixtures / "configs" / REAL[family] / sub).read_text())


def _effective(component, cfg):
    """The full parameter set a config means once its class fills in the defaults."""
    import diffusers
    from transformers import CLIPTextConfig

    if component.startswith("text_encoder"):
        d = CLIPTextConfig.from_dict(dict(cfg)).to_dict()
    elif component == "scheduler":
        d = dict(getattr(diffusers, cfg["_class_name"]).from_config(cfg).config)
    else:
        cls = getattr(diffusers, cfg["_class_name"])
        d = dict(cls.extract_init_dict(cfg)[0])
        import inspect

        for name, p in inspect.signature(cls.__init__).parameters.items():
            if name != "self" and p.default is not inspect.Parameter.empty:
                d.setdefault(name, p.default)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()
            if k not in _NOT_PARAMETERS and not k.startswith("_")}


@pytest.mark.parametrize("family,component", [(f, c) for f in COMPONENTS for c in COMPONENTS[f]])
def test_shipped_config_equals_real(real_fixtures, family, component):
    ours = cd.shipped_config(family, component)
    real = _real_config(real_fixtures, family, component)
    # every parameter the real file states (and its class reads) has the same value in ours ...
    known = _effective(component, real)
    for k, v in real.items():
        if k not in _NOT_PARAMETERS and k in known:
            assert ours.get(k, "<absent>") == v, (k, ours.get(k, "<absent>"), v)
    # ... and what ours adds are the class defaults, so both mean the same model
    assert _effective(component, ours) == _effective(component, real)
    if component.startswith("text_encoder"):
        assert ours["architectures"] == real["architectures"]
    else:
        assert ours["_class_name"] == real["_class_name"]


def test_shipped_model_index(real_fixtures):
    for family in ("sd1", "sdxl"):
        ours = cd.shipped_config(family, "model_index")
        real = json.loads((real_fixtures / "configs" / REAL[family] / "model_index.json").read_text())
        for k in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "text_encoder_2", "tokenizer_2"):
            assert ours.get(k) == real.get(k), k
        assert ours["_class_name"] == real["_class_name"]
    assert cd.shipped_config("sd1", "model_index")["safety_checker"] == [None, None]


def test_every_family_folder_is_complete():
    for folder in ("sd1", "sd1-inpaint", "sd2", "sdxl", "sdxl-refiner"):
        root = cd.CONFIG_ROOT / folder
        index = json.loads((root / "model_index.json").read_text())
        for comp, spec in index.items():
            if comp.startswith("_") or not isinstance(spec, list) or spec[0] is None:
                continue
            sub = root / comp
            assert sub.is_dir(), sub
            assert any(sub.glob("*.json")), sub
    assert cd.shipped_config("sd1", "unet", inpainting=True)["in_channels"] == 9
    assert cd.shipped_config("sd2", "scheduler")["prediction_type"] == "v_prediction"
    assert cd.shipped_config("sd2", "text_encoder")["num_hidden_layers"] == 23
    assert cd.shipped_config("sd2", "tokenizer")["pad_token"] == "!"


# --- tokenizer files ---------------------------------------------------------------------------

def test_tokenizer_files_equal_real(real_fixtures):
    real = real_fixtures / "tokenizer" / "sd15"
    ours = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert ours == json.loads((real / "vocab.json").read_text(encoding="utf-8"))
    assert len(ours) == 49408
    assert (TOKENIZER_DIR / "merges.txt").read_bytes() == (real / "merges.txt").read_bytes()


def test_tokenizer_tool_regenerates_the_files(real_fixtures, tmp_path, repo_root):
    gz = real_fixtures / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz"
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_clip_tokenizer.py"), str(gz),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / name).read_bytes() == (TOKENIZER_DIR / name).read_bytes(), name


PROMPTS = [
    "a photo of an astronaut riding a horse on mars",
    "(masterpiece:1.2), best quality, [[blue hair]], <lora:add_detail:0.7>, BREAK 1girl",
    "Ünïcödé façade — 東京タワー, emoji 🐱👍 and  double  spaces\n newline",
    "embedding:EasyNegative, bad_prompt_version2, !!!, 12345, e.g. U.S.A.",
]


@pytest.mark.parametrize("family,index,real_dir", [
    ("sd1", 0, "sd15"), ("sdxl", 0, "sdxl/tokenizer"), ("sdxl", 1, "sdxl/tokenizer_2"), ("sd2", 0, "sdxl/tokenizer_2")])
def test_tokenizers_match_real(real_fixtures, family, index, real_dir):
    from transformers import CLIPTokenizer

    ours = load_tokenizer(family, index)
    real = CLIPTokenizer.from_pretrained(real_fixtures / "tokenizer" / real_dir)
    assert ours.pad_token == real.pad_token and ours.model_max_length == 77 and len(ours) == 49408
    for prompt in PROMPTS:
        a = ours(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        b = real(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        assert a == b, prompt
    assert load_tokenizer(family, index) is not ours  # fresh instances (TI adds tokens)


# --- key normalisation ---------------------------------------------------------------------------

def test_normalize_old_clip_layout():
    sd = {"cond_stage_model.transformer.embeddings.token_embedding.weight": 1,
          "cond_stage_model.transformer.encoder.layers.0.mlp.fc1.weight": 2,
          "cond_stage_model.transformer.final_layer_norm.bias": 3,
          "conditioner.embedders.0.transformer.encoder.layers.0.mlp.fc1.weight": 4,
          "cond_stage_model.transformer.text_model.embeddings.position_ids": 5,
          "model.diffusion_model.out.2.weight": 6}
    assert cd.normalize_keys(sd) == {
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": 1,
        "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight": 2,
        "cond_stage_model.transformer.text_model.final_layer_norm.bias": 3,
        "conditioner.embedders.0.transformer.text_model.encoder.layers.0.mlp.fc1.weight": 4,
        "cond_stage_model.transformer.text_model.embeddings.position_ids": 5,
        "model.diffusion_model.out.2.weight": 6}


def test_normalize_sd21_turbo():
    sd = {"conditioner.embedders.0.model.ln_final.weight": (1024,),
          "conditioner.embedders.0.model.transformer.resblocks.0.attn.in_proj_weight": (3072, 1024),
          "model.diffusion_model.out.2.weight": (4, 320, 3, 3)}
    out = cd.normalize_keys(sd)
    assert set(out) == {"cond_stage_model.model.ln_final.weight",
                        "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight",
                        "model.diffusion_model.out.2.weight"}
    refiner = {"conditioner.embedders.0.model.ln_final.weight": (1280,)}
    assert cd.normalize_keys(refiner) == refiner


# --- detection on real key lists ------------------------------------------------------------------

@pytest.fixture(scope="module")
def sd1_shapes(real_fixtures):
    m = read_key_manifest(real_fixtures / "manifests" / "sd-mecha" / "sd1-ldm.yaml")
    return {k: tuple(v.shape) for k, v in meta_state_dict(m, optional=False).items()}


@pytest.fixture(scope="module")
def sdxl_shapes(real_fixtures):
    m = read_key_manifest(real_fixtures / "manifests" / "sd-mecha" / "sdxl-sgm.yaml")
    return {k: tuple(v.shape) for k, v in meta_state_dict(m, optional=False).items()}


def test_detect_sd15(sd1_shapes):
    det = cd.detect(sd1_shapes)
    assert (det.family, det.is_inpainting, det.prediction_type, det.native_size) == ("sd1", False, "epsilon", 512)
    assert det.text_encoders == [("clip", "cond_stage_model.transformer.text_model.")]
    assert det.configs["unet"] == cd.shipped_config("sd1", "unet")


def test_detect_sdxl_and_markers(sdxl_shapes):
    det = cd.detect(sdxl_shapes)
    assert (det.family, det.prediction_type, det.native_size, det.zero_terminal_snr) == ("sdxl", "epsilon", 1024, False)
    assert det.configs["unet"]["transformer_layers_per_block"] == [1, 2, 10]
    assert det.configs["unet"]["addition_time_embed_dim"] == 256
    v = cd.detect({**sdxl_shapes, "v_pred": (0,), "ztsnr": (0,)})
    assert (v.prediction_type, v.zero_terminal_snr) == ("v_prediction", True)


def test_detect_inpainting(sd1_shapes, sdxl_shapes):
    k = "model.diffusion_model.input_blocks.0.0.weight"
    sd1 = dict(sd1_shapes, **{k: (320, 9, 3, 3)})
    det = cd.detect(sd1)
    assert det.family == "sd1" and det.is_inpainting and det.configs["unet"]["in_channels"] == 9
    assert det.configs["unet"] == cd.shipped_config("sd1", "unet", inpainting=True)
    xl = cd.detect(dict(sdxl_shapes, **{k: (320, 9, 3, 3)}))
    assert xl.family == "sdxl" and xl.is_inpainting and xl.native_size == 1024


def test_detect_without_vae(sd1_shapes):
    det = cd.detect({k: v for k, v in sd1_shapes.items() if not k.startswith("first_stage_model.")})
    assert not det.has_vae and "vae" not in det.configs


def test_detect_accepts_tensors(sd1_shapes):
    sd = {k: torch.empty(v, device="meta") for k, v in sd1_shapes.items()}
    assert cd.detect(sd).configs == cd.detect(sd1_shapes).configs


def _expect_unsupported(shapes, *words):
    with pytest.raises(cd.UnsupportedArchitectureError) as ei:
        cd.detect(shapes)
    msg = str(ei.value)
    assert msg.startswith("unsupported architecture")
    for w in words:
        assert w in msg, (w, msg)
    return ei.value


def test_unsupported_architectures(sd1_shapes, sdxl_shapes):
    _expect_unsupported({"model.diffusion_model.x_embedder.proj.weight": (1536, 16, 2, 2),
                         "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (4608, 1536)}, "SD3")
    _expect_unsupported({"double_blocks.0.img_attn.qkv.weight": (9216, 3072)}, "Flux")
    # bigG alone (the refiner's text side) before SDXL base's UNet: 6 size values do not fit the refiner's 5
    base_unet_as_refiner = {("conditioner.embedders.0.model." + k[len("conditioner.embedders.1.model."):]
                             if k.startswith("conditioner.embedders.1.model.") else k): v
                            for k, v in sdxl_shapes.items() if not k.startswith("conditioner.embedders.0.transformer.")}
    _expect_unsupported(base_unet_as_refiner, "size conditioning of width 2816")
    _expect_unsupported(dict(sd1_shapes, **{"model.diffusion_model.input_blocks.0.0.weight": (320, 8, 3, 3)}),
                        "instruct-pix2pix")
    _expect_unsupported({**sd1_shapes, "edm_mean": (1, 4, 1, 1), "edm_std": (1, 4, 1, 1)}, "Playground")
    _expect_unsupported({**sdxl_shapes, "edm_vpred.sigma_max": ()}, "EDM")
    _expect_unsupported({**sd1_shapes, "depth_model.model.pretrained.act_postprocess3.0.project.0.bias": (1024,)}
                        | {k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.model."): v
                           for k, v in sd1_shapes.items() if k.startswith("cond_stage_model")}, "depth")


def test_not_a_checkpoint_says_what_it_is(sd1_shapes):
    _expect_unsupported({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320)}, "LoRA")
    _expect_unsupported({k: v for k, v in sd1_shapes.items() if k.startswith("first_stage_model.")}, "VAE",
                        "no Stable Diffusion UNet")
    _expect_unsupported({"emb_params": (8, 768)}, "textual inversion")
    _expect_unsupported({"down_blocks.0.resnets.0.conv1.weight": (320, 320, 3, 3), "conv_in.weight": (320, 4, 3, 3)},
                        "diffusers-layout")
    _expect_unsupported({k: v for k, v in sd1_shapes.items() if k.startswith("model.diffusion_model.")},
                        "without a known text encoder")


# --- config inference on tiny models ---------------------------------------------------------------

_WEIGHT_DEFINING = ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "down_block_types",
                    "up_block_types", "cross_attention_dim", "use_linear_projection", "attention_head_dim",
                    "addition_embed_type", "addition_time_embed_dim", "projection_class_embeddings_input_dim",
                    "latent_channels", "norm_num_groups", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "vocab_size", "max_position_embeddings", "hidden_act", "projection_dim",
                    "scaling_factor", "sample_size")


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("family,make", [("sd1", tiny_sd1), ("sd2", tiny_sd2), ("sdxl", tiny_sdxl)])
def test_inferred_configs_match_tiny_models(family, make):
    comps = make()
    shapes = {k: tuple(v.shape) for k, v in components_to_ldm(comps, family).items()}
    det = cd.detect(shapes)
    assert det.family == family
    for name, cfg in det.configs.items():
        mod_cfg = comps[name].config
        mod_cfg = mod_cfg.to_dict() if hasattr(mod_cfg, "to_dict") else dict(mod_cfg)
        for k in _WEIGHT_DEFINING:
            if k in mod_cfg and not (k == "sample_size" and family == "sd2"):
                assert _norm(cfg.get(k)) == _norm(mod_cfg[k]), (name, k, cfg.get(k), mod_cfg[k])
        if name == "unet":
            tl = _norm(mod_cfg["transformer_layers_per_block"])
            assert cfg["transformer_layers_per_block"] in (tl, [tl] * len(cfg["block_out_channels"])), tl


def test_sd2_v_prediction_test():
    assert cd.sd2_uses_v_prediction(tiny_sd2(v_prediction=True)["unet"]) is True
    assert cd.sd2_uses_v_prediction(tiny_sd2(v_prediction=False)["unet"]) is False
    det = cd.detect({k: tuple(v.shape) for k, v in components_to_ldm(tiny_sd2(), "sd2").items()})
    assert det.prediction_type is None and det.native_size is None  # decided after the UNet is built


def test_native_sizes():
    assert cd.native_size_for("sd1", "epsilon") == 512
    assert cd.native_size_for("sd2", "v_prediction") == 768
    assert cd.native_size_for("sd2", "epsilon") == 512
    assert cd.native_size_for("sd2", "v_prediction", is_inpainting=True) == 512
    assert cd.native_size_for("sdxl", "epsilon") == 1024
