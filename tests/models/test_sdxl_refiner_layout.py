"""The full-size SDXL refiner layout (sd_xl_refiner_1.0.safetensors) on the meta device: detected, every
component built with the real shapes, every key converted onto it; and the tiny refiner's round trip.

The text encoder and VAE keys are the real SDXL base file's (sd-mecha's key list: the refiner's bigG and VAE are
the same modules, its bigG under ``conditioner.embedders.0``); the UNet keys are written from a UNet built with
diffusers' published refiner parameters, and spot-checked against the names and shapes of sgm's refiner config
(model_channels 384, channel_mult 1,2,4,4, attention at the middle levels, depth 4, context 1280, adm 2560).
"""
from __future__ import annotations

import pytest
import torch

from modules.models import checkpoint_detect as cd
from modules.models import checkpoint_loader as cl
from modules.models.ldm_export import unet_to_ldm
from tests.models.test_ldm_keys_real import meta_state_dict, read_key_manifest
from tests.tiny_models import tiny_sdxl_refiner, write_single_file

# diffusers' stabilityai/stable-diffusion-xl-refiner-1.0 unet/config.json, the weight-defining part
DIFFUSERS_REFINER_UNET = dict(
    in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=[384, 768, 1536, 1536],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    transformer_layers_per_block=4, attention_head_dim=[6, 12, 24, 24], cross_attention_dim=1280,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2560,
    use_linear_projection=True, norm_num_groups=32, sample_size=128)

# (ldm key, shape) facts of the real file; None: the key must not exist
SGM_FACTS = {
    "model.diffusion_model.input_blocks.0.0.weight": (384, 4, 3, 3),
    "model.diffusion_model.time_embed.0.weight": (1536, 384),
    "model.diffusion_model.label_emb.0.0.weight": (1536, 2560),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": None,  # level 0: no attention
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.3.attn2.to_k.weight": (768, 1280),
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.4.attn2.to_k.weight": None,  # depth 4
    "model.diffusion_model.input_blocks.7.1.proj_in.weight": (1536, 1536),  # linear projection
    "model.diffusion_model.input_blocks.10.0.out_layers.3.weight": (1536, 1536, 3, 3),
    "model.diffusion_model.input_blocks.10.1.transformer_blocks.0.attn1.to_q.weight": None,  # level 3: none
    "model.diffusion_model.middle_block.1.transformer_blocks.3.attn2.to_v.weight": (1536, 1280),
    "model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn1.to_q.weight": (1536, 1536),
    "model.diffusion_model.output_blocks.2.1.conv.weight": (1536, 1536, 3, 3),  # upsampler of the deepest level
    "model.diffusion_model.out.2.weight": (4, 384, 3, 3),
    "conditioner.embedders.0.model.transformer.resblocks.31.attn.in_proj_weight": (3840, 1280),
    "conditioner.embedders.0.model.text_projection": (1280, 1280),
    "conditioner.embedders.0.model.positional_embedding": (77, 1280),
    "first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3),
}


@pytest.fixture(scope="module")
def refiner_file_shapes(real_fixtures):
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel(**DIFFUSERS_REFINER_UNET)
    sd = {k: v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()}
    base = meta_state_dict(read_key_manifest(real_fixtures / "manifests" / "sd-mecha" / "sdxl-sgm.yaml"))  # with the final block, ln_final, projection: a refiner file has them
    for k, v in base.items():
        if k.startswith("conditioner.embedders.1.model."):
            sd["conditioner.embedders.0.model." + k[len("conditioner.embedders.1.model."):]] = v
        elif k.startswith("first_stage_model."):
            sd[k] = v
    return sd


def test_real_layout_facts(refiner_file_shapes):
    for key, shape in SGM_FACTS.items():
        if shape is None:
            assert key not in refiner_file_shapes, key
        else:
            assert tuple(refiner_file_shapes[key].shape) == shape, key
    assert not any(k.startswith("conditioner.embedders.1.") for k in refiner_file_shapes)


def test_full_size_refiner_is_detected_with_the_shipped_configs(refiner_file_shapes):
    sd = cd.normalize_keys(refiner_file_shapes)
    assert sd.keys() == refiner_file_shapes.keys()  # not mistaken for SD2.1-turbo (bigG is 1280 wide)
    det = cd.detect(sd)
    assert (det.family, det.is_inpainting, det.prediction_type, det.native_size, det.has_vae) == (
        "sdxl-refiner", False, "epsilon", 1024, True)
    assert det.text_encoders == [("open_clip", "conditioner.embedders.0.model.")]
    assert det.configs["unet"] == cd.shipped_config("sdxl-refiner", "unet") | {
        # diffusers' "4" spelled per level; level 0 has no attention, level 3's value is the middle block's depth
        "transformer_layers_per_block": [1, 4, 4, 4]}
    for k, v in DIFFUSERS_REFINER_UNET.items():
        if k != "transformer_layers_per_block":
            assert det.configs["unet"][k] == v, k
    te = det.configs["text_encoder"]
    assert (te["hidden_size"], te["num_hidden_layers"], te["projection_dim"], te["hidden_act"]) == (1280, 32, 1280, "gelu")
    assert te == cd.shipped_config("sdxl", "text_encoder_2")  # the same bigG as SDXL base's second encoder
    assert det.configs["vae"] == cd.shipped_config("sdxl", "vae")


def test_every_key_converts_onto_the_built_modules(refiner_file_shapes):
    det = cd.detect(cd.normalize_keys(refiner_file_shapes))
    components, ignored = cl.convert_original_state_dict(refiner_file_shapes, det)
    assert ignored == []
    models = cl.build_empty_models(det.configs)
    assert sorted(models) == ["text_encoder", "unet", "vae"]
    for name, model in models.items():
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        comp = components[name]
        if name == "text_encoder":
            comp = cl.fit_text_encoder_keys(comp, model.state_dict())
        got = {k: tuple(v.shape) for k, v in comp.items()}
        assert got == expected, name
    unet_params = sum(v.numel() for v in models["unet"].state_dict().values())
    assert 2.2e9 < unet_params < 2.3e9  # the refiner's 2.3 B UNet


def test_tiny_refiner_round_trip_and_generation(tmp_path):
    comps = tiny_sdxl_refiner()
    path = write_single_file(comps, tmp_path / "refiner.safetensors", "sdxl-refiner")
    model = cl.load_checkpoint(path)
    assert model.family == "sdxl-refiner" and model.warnings == [] and model.ignored_keys == []
    assert len(model.text_encoders) == len(model.tokenizers) == 1
    assert model.tokenizers[0].pad_token == "!"  # bigG's tokenizer, as SDXL's tokenizer_2
    for name in ("unet", "vae"):
        for (k, a), (_, b) in zip(comps[name].state_dict().items(), getattr(model, name).state_dict().items()):
            assert torch.equal(a, b), (name, k)
    for (k, a), (_, b) in zip(comps["text_encoder"].state_dict().items(), model.text_encoders[0].state_dict().items()):
        assert torch.equal(a, b), k
    assert model.config["unet"]["addition_time_embed_dim"] * 5 + 32 == model.config["unet"][
        "projection_class_embeddings_input_dim"]


def test_shipped_refiner_folder_reuses_sdxl_parts():
    for ours, theirs in (("vae", "vae"), ("scheduler", "scheduler"), ("text_encoder", "text_encoder_2"),
                         ("tokenizer", "tokenizer_2")):
        assert cd.shipped_config("sdxl-refiner", ours) == cd.shipped_config("sdxl", theirs), ours
    unet = cd.shipped_config("sdxl-refiner", "unet")
    for k, v in DIFFUSERS_REFINER_UNET.items():
        assert unet[k] == v, k


def test_diffusers_refiner_folder(tmp_path):
    """diffusers' refiner folder: text_encoder is [null, null], bigG sits in text_encoder_2 / tokenizer_2."""
    import diffusers

    comps = tiny_sdxl_refiner(seed=2)
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=comps["vae"], unet=comps["unet"], scheduler=comps["scheduler"], text_encoder=None, tokenizer=None,
        text_encoder_2=comps["text_encoder"], tokenizer_2=comps["tokenizer"], requires_aesthetics_score=True)
    pipe.save_pretrained(tmp_path / "refiner")
    model = cl.load_any(tmp_path / "refiner")
    assert model.family == "sdxl-refiner" and len(model.text_encoders) == len(model.tokenizers) == 1
    assert model.tokenizers[0].pad_token == "!"
    for (k, a), (_, b) in zip(comps["text_encoder"].state_dict().items(), model.text_encoders[0].state_dict().items()):
        assert torch.equal(a, b), k
    assert model.config["text_encoder"]["hidden_size"] == 32


def test_lora_key_mapper_knows_the_refiner():
    from modules.networks.lora_keys import KeyMapper

    comps = tiny_sdxl_refiner()
    mapper = KeyMapper("sdxl-refiner", comps["unet"], [comps["text_encoder"]])
    unet_hit = mapper.resolve("lora_unet_input_blocks_3_1_transformer_blocks_0_attn2_to_k.lora_down.weight")
    te_hit = mapper.resolve("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight")
    assert unet_hit is not None and te_hit is not None
    assert mapper.a1111_layer_name(te_hit[0]).startswith("0_transformer_text_model_encoder_layers_0")
