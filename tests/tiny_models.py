"""Tiny random Stable Diffusion pipelines for tests (shared helper: import it from any test).

``tiny_sd1()``, ``tiny_sd2()``, ``tiny_sdxl()``, ``tiny_sdxl_refiner()`` return a dict of diffusers components
(``unet``, ``vae``, ``text_encoder`` [, ``text_encoder_2``], ``tokenizer`` [, ``tokenizer_2``],
``scheduler``) with the real architecture's layout at toy widths: a 64x64 generation step takes
milliseconds on a CPU. Tokenizers are the real CLIP tokenizer (shipped files, vocab 49408).

The widths follow the conventions the single-file loader assumes for what shapes cannot say
(multiples of 32 for GroupNorm, 8 UNet heads for SD1, 64-wide heads elsewhere), so
``write_single_file()`` + ``modules.checkpoint_loader.load_checkpoint`` round-trips them exactly.
"""
from __future__ import annotations

from pathlib import Path

import torch

from modules.models import checkpoint_detect as cd
from modules.models.checkpoint_loader import load_tokenizer, scheduler_config_for
from modules.models.ldm_export import save_single_file

__all__ = ["tiny_sd1", "tiny_sd2", "tiny_sdxl", "tiny_sdxl_refiner", "write_single_file", "TINY_TEXT_WIDTH"]

TINY_TEXT_WIDTH = 32
_VOCAB = 49408


def _clip_config(*, hidden=TINY_TEXT_WIDTH, layers=2, act="quick_gelu", projection_dim=None, arch="CLIPTextModel"):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        architectures=[arch], hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), vocab_size=_VOCAB, max_position_embeddings=77, hidden_act=act,
        layer_norm_eps=1e-5, projection_dim=projection_dim or hidden, bos_token_id=0, eos_token_id=2, pad_token_id=1)


def _vae(seed: int, family: str):
    from diffusers import AutoencoderKL

    base = cd.shipped_config(family, "vae")
    torch.manual_seed(seed + 1)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=32, sample_size=cd.native_size_for(family, "epsilon"),
        scaling_factor=base["scaling_factor"], force_upcast=base.get("force_upcast", True)).eval()


def _scheduler(family: str, prediction_type: str):
    import diffusers

    cfg = scheduler_config_for(family, prediction_type)
    return getattr(diffusers, cfg["_class_name"]).from_config(cfg)


def tiny_sd1(seed: int = 0) -> dict:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_TEXT_WIDTH, attention_head_dim=8, norm_num_groups=32).eval()
    vae = _vae(seed, "sd1")
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_clip_config()).eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": load_tokenizer("sd1"),
            "scheduler": _scheduler("sd1", "epsilon")}


def tiny_sd2(seed: int = 0, v_prediction: bool = True) -> dict:
    """Tiny SD2. The UNet's output bias is set so that the reference UI's v-prediction test
    (mean(out - x) < -1 on an all-0.5 input) says v for ``v_prediction`` and epsilon otherwise."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=96 if v_prediction else 64, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=TINY_TEXT_WIDTH,
        attention_head_dim=[1, 1], use_linear_projection=True, upcast_attention=True, norm_num_groups=32).eval()
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.01)
        unet.conv_out.bias.fill_(-3.0 if v_prediction else 2.0)
    assert cd.sd2_uses_v_prediction(unet) == v_prediction
    vae = _vae(seed, "sd2")
    vae.register_to_config(sample_size=768 if v_prediction else 512)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_clip_config(act="gelu")).eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": load_tokenizer("sd2"),
            "scheduler": _scheduler("sd2", "v_prediction" if v_prediction else "epsilon")}


def tiny_sdxl(seed: int = 0) -> dict:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    w = TINY_TEXT_WIDTH
    time_dim = 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=[1, 2], attention_head_dim=[1, 1], use_linear_projection=True,
        cross_attention_dim=2 * w, addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=w + 6 * time_dim, norm_num_groups=32).eval()
    vae = _vae(seed, "sdxl")
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_clip_config()).eval()
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(
        _clip_config(act="gelu", projection_dim=w, arch="CLIPTextModelWithProjection")).eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "text_encoder_2": text_encoder_2,
            "tokenizer": load_tokenizer("sdxl", 0), "tokenizer_2": load_tokenizer("sdxl", 1),
            "scheduler": _scheduler("sdxl", "epsilon")}


def tiny_sdxl_refiner(seed: int = 0) -> dict:
    """The SDXL refiner's layout: OpenCLIP bigG alone (context = its width, pooled projection), plain outer UNet
    levels with attention in the middle ones, and 5 micro-conditioning values (sizes, crop, aesthetic score)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection

    w = TINY_TEXT_WIDTH
    time_dim = 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=[1, 2, 1], attention_head_dim=[1, 1, 1], use_linear_projection=True,
        cross_attention_dim=w, addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=w + 5 * time_dim, norm_num_groups=32).eval()
    vae = _vae(seed, "sdxl-refiner")
    torch.manual_seed(seed + 3)
    text_encoder = CLIPTextModelWithProjection(
        _clip_config(act="gelu", projection_dim=w, arch="CLIPTextModelWithProjection")).eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": load_tokenizer("sdxl-refiner", 0),
            "scheduler": _scheduler("sdxl-refiner", "epsilon")}


def write_single_file(components: dict, path, family: str, metadata: dict | None = None) -> Path:
    """Save tiny components as an original-layout single-file .safetensors checkpoint."""
    return save_single_file(components, path, family, metadata=metadata)
