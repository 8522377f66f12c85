"""Which Stable Diffusion architecture a single-file checkpoint holds, from its key names and shapes.

Everything here is pure: the input is a mapping ``key -> tensor`` or ``key -> shape`` (tensors on
the meta device, or the shapes from a safetensors header, do as well as real weights), so a
checkpoint can be classified before a byte of its weights is read.

* :func:`normalize_keys` applies the reference UI's key normalisation (old CLIP layout, SD2.1-turbo).
* :func:`detect` finds the family (sd1 / sd2 / sdxl / sdxl-refiner, inpainting variants) or raises
  :class:`UnsupportedArchitectureError` naming what it recognised, and infers every component
  config from the family's shipped config (``modules/models/model_configs``) overridden by the shapes.
* :func:`sd2_uses_v_prediction` is the reference UI's tiny forward test for SD2 UNets.

Things the weights cannot tell (number of attention heads, GroupNorm groups) follow the original
models' conventions: SD1 UNets use 8 heads, SD2/SDXL UNets and all text encoders use 64-wide heads
(``max(1, width // 64)`` heads), GroupNorm always has 32 groups.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

__all__ = [
    "CONFIG_ROOT",
    "FAMILIES",
    "SDXL_FAMILIES",
    "UNET_PREFIX",
    "VAE_PREFIX",
    "TEXT_ENCODER_PREFIXES",
    "IGNORED_KEYS",
    "IGNORED_PREFIXES",
    "Detection",
    "UnsupportedArchitectureError",
    "config_dir",
    "shipped_config",
    "shape_of",
    "normalize_keys",
    "detect",
    "infer_unet_config",
    "infer_vae_config",
    "infer_clip_config",
    "infer_open_clip_config",
    "native_size_for",
    "sd2_uses_v_prediction",
]

CONFIG_ROOT = Path(__file__).resolve().parent / "model_configs"
FAMILIES = ("sd1", "sd2", "sdxl", "sdxl-refiner")
# What A1111 calls ``is_sdxl`` (its refiner is an sgm model with a conditioner too): SDXL's sampling defaults apply.
SDXL_FAMILIES = ("sdxl", "sdxl-refiner")

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer.text_model."
SD2_OPENCLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_OPENCLIP_PREFIX = "conditioner.embedders.1.model."
# sd_xl_refiner: OpenCLIP ViT-bigG alone, as the first (and only) text embedder
REFINER_OPENCLIP_PREFIX = "conditioner.embedders.0.model."

# Per family: (layout, key prefix) of each text encoder, in pipeline order.
TEXT_ENCODER_PREFIXES: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType({
    "sd1": (("clip", SD1_CLIP_PREFIX),),
    "sd2": (("open_clip", SD2_OPENCLIP_PREFIX),),
    "sdxl": (("clip", SDXL_CLIP_PREFIX), ("open_clip", SDXL_OPENCLIP_PREFIX)),
    "sdxl-refiner": (("open_clip", REFINER_OPENCLIP_PREFIX),),
})

# Keys real checkpoints carry that no inference module needs: the DDPM schedule buffers,
# EMA copies, training-loss modules, CLIP's position_ids buffer, OpenCLIP's logit scale.
IGNORED_KEYS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2", "logvar", "lvlb_weights", "model_ema.decay",
    "model_ema.num_updates", "v_pred", "ztsnr", "global_step", "epoch",
})
IGNORED_PREFIXES = ("model_ema.", "first_stage_model.loss.", "loss.", "denoiser.", "cond_stage_model.model.logit_scale",
                    "conditioner.embedders.1.model.logit_scale", "conditioner.embedders.0.model.logit_scale")


class UnsupportedArchitectureError(ValueError):
    """The state dict is not an SD1/SD2/SDXL checkpoint this loader can build.

    ``recognised`` lists what was found (e.g. ``["SD3 transformer"]``)."""

    def __init__(self, message: str, recognised: Iterable[str] = ()):
        self.recognised = list(recognised)
        super().__init__(message)


@dataclass
class Detection:
    family: str                        # "sd1" | "sd2" | "sdxl" | "sdxl-refiner"
    is_inpainting: bool
    prediction_type: str | None        # None: an SD2 UNet that needs sd2_uses_v_prediction()
    native_size: int | None            # None until the prediction type is known
    configs: dict[str, dict]           # "unet", "vae" (absent if the file has none), "text_encoder", "text_encoder_2"
    text_encoders: list[tuple[str, str]]  # (layout, key prefix) per text encoder
    has_vae: bool
    zero_terminal_snr: bool = False
    # keys of a text encoder the file may omit (pruned final layers the pipeline never uses):
    optional_text_keys: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# shipped configs


def config_dir(family: str, inpainting: bool = False) -> Path:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}")
    if family == "sd1" and inpainting:
        return CONFIG_ROOT / "sd1-inpaint"
    return CONFIG_ROOT / family


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def shipped_config(family: str, component: str, inpainting: bool = False) -> dict:
    """A fresh copy of a shipped config: component is unet, vae, text_encoder, text_encoder_2,
    scheduler, model_index, tokenizer or tokenizer_2."""
    base = config_dir(family, inpainting)
    if component == "model_index":
        path = base / "model_index.json"
    elif component == "scheduler":
        path = base / "scheduler" / "scheduler_config.json"
    elif component.startswith("tokenizer"):
        path = base / component / "tokenizer_config.json"
    else:
        path = base / component / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no shipped {component} config for {family}: {path}")
    return _read_json(path)


def native_size_for(family: str, prediction_type: str | None, is_inpainting: bool = False) -> int:
    if family in SDXL_FAMILIES:
        return 1024
    if family == "sd2" and prediction_type == "v_prediction" and not is_inpainting:
        return 768
    return 512


# --------------------------------------------------------------------------------------------
# keys


def shape_of(value: Any) -> tuple[int, ...]:
    shape = getattr(value, "shape", value)
    return tuple(int(s) for s in shape)


_OLD_CLIP = re.compile(r"^(cond_stage_model|conditioner\.embedders\.0)\.transformer\.(embeddings|encoder|final_layer_norm)\.")


def normalize_keys(sd: Mapping[str, Any]) -> dict[str, Any]:
    """The reference UI's key normalisation (values are passed through untouched).

    * old CLIP layout ``cond_stage_model.transformer.{embeddings,encoder,final_layer_norm}.`` gets
      ``text_model.`` inserted (also under ``conditioner.embedders.0.`` as current transformers writes it);
    * SD2.1-turbo (``conditioner.embedders.0.model.ln_final.weight`` of width 1024, without an
      ``embedders.1``) has ``conditioner.embedders.0.`` renamed ``cond_stage_model.``.
    """
    out: dict[str, Any] = {}
    for k, v in sd.items():
        m = _OLD_CLIP.match(k)
        if m:
            k = f"{m.group(1)}.transformer.text_model.{k[m.end(1) + len('.transformer.'):]}"
        out[k] = v
    turbo = out.get("conditioner.embedders.0.model.ln_final.weight")
    if turbo is not None and shape_of(turbo)[0] == 1024 and not any(
            k.startswith("conditioner.embedders.1.") for k in out):
        out = {("cond_stage_model." + k[len("conditioner.embedders.0."):]
                if k.startswith("conditioner.embedders.0.") else k): v for k, v in out.items()}
    return out


def _sub(shapes: Mapping[str, tuple], prefix: str) -> dict[str, tuple]:
    n = len(prefix)
    return {k[n:]: v for k, v in shapes.items() if k.startswith(prefix)}


def _indices(keys: Iterable[str], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    found = set()
    for k in keys:
        m = rx.match(k)
        if m:
            found.add(int(m.group(1)))
    return sorted(found)


# --------------------------------------------------------------------------------------------
# what is this file?


def _describe(shapes: Mapping[str, tuple]) -> list[str]:
    keys = list(shapes)
    has = lambda *subs: any(any(s in k for s in subs) for k in keys)  # noqa: E731
    start = lambda *pre: any(k.startswith(pre) for k in keys)  # noqa: E731
    found = []
    if has("x_embedder.proj.weight", "joint_blocks.0."):
        found.append("SD3 transformer (MMDiT)")
    if has("double_blocks.0.img_attn"):
        found.append("Flux transformer")
    if start("model.diffusion_model.input_blocks."):
        w = shapes.get("model.diffusion_model.input_blocks.0.0.weight")
        found.append(f"ldm UNet (in_channels={w[1]})" if w and len(w) > 1 else "ldm UNet")
    if start("cond_stage_model.transformer.text_model.", "conditioner.embedders.0.transformer.text_model."):
        found.append("CLIP ViT-L text encoder")
    if start("cond_stage_model.model.transformer.", "conditioner.embedders.1.model.transformer.",
             "conditioner.embedders.0.model.transformer."):
        found.append("OpenCLIP text encoder")
    if start("cond_stage_model.roberta."):
        found.append("XLM-RoBERTa text encoder (AltDiffusion)")
    if start("first_stage_model.") or "encoder.conv_in.weight" in shapes:
        found.append("VAE")
    if start("control_model.", "controlnet_cond_embedding."):
        found.append("ControlNet")
    if start("lora_unet_", "lora_te", "lora_te1_", "lora_te2_") or has(".lora_down.", ".lora_A.", "lora.down", ".hada_w1_a", ".lokr_w1"):
        found.append("LoRA / LyCORIS network")
    if "emb_params" in shapes or has("string_to_param") or set(keys) <= {"clip_l", "clip_g"} and keys:
        found.append("textual inversion embedding")
    if start("down_blocks.", "conv_in.", "mid_block.") and not start("model.diffusion_model."):
        found.append("diffusers-layout model component")
    if start("depth_model."):
        found.append("MiDaS depth model")
    if start("embedder.model."):
        found.append("unCLIP image embedder")
    return found


def _unsupported(what: str, shapes: Mapping[str, tuple]) -> UnsupportedArchitectureError:
    recognised = _describe(shapes)
    rec = f" (recognised: {', '.join(recognised)})" if recognised else ""
    return UnsupportedArchitectureError(
        f"unsupported architecture: {what}{rec}. Supported are SD1.x, SD2.x, SDXL base and SDXL refiner checkpoints "
        "and their inpainting variants, in the original single-file layout.", recognised)


def _family(shapes: Mapping[str, tuple]) -> str:
    """Mirror of the reference UI's guess_model_config_from_state_dict order (spec 13.3)."""
    keys = shapes.keys()
    if any(k.startswith(("model.diffusion_model.x_embedder.", "model.diffusion_model.joint_blocks."))
           or k.startswith("joint_blocks.") for k in keys):
        raise _unsupported("SD3 (MMDiT)", shapes)
    if any("double_blocks.0.img_attn" in k for k in keys):
        raise _unsupported("Flux", shapes)
    if "edm_mean" in shapes or "edm_std" in shapes:
        raise _unsupported("Playground v2.5 (EDM latent statistics)", shapes)
    if any(k.startswith("edm_vpred.") for k in keys):
        raise _unsupported("SDXL with EDM v-prediction sampling (CosXL style)", shapes)
    if any(k.startswith("control_model.") for k in keys):
        raise _unsupported("ControlNet", shapes)
    if any(k.startswith(SDXL_OPENCLIP_PREFIX) for k in keys):
        return "sdxl"
    if any(k.startswith(REFINER_OPENCLIP_PREFIX) for k in keys):
        return "sdxl-refiner"
    if any(k.startswith("depth_model.") for k in keys):
        raise _unsupported("SD2 depth-to-image", shapes)
    if any(k.startswith("embedder.model.") for k in keys):
        raise _unsupported("SD2.1 unCLIP", shapes)
    if any(k.startswith(SD2_OPENCLIP_PREFIX + "transformer.") for k in keys):
        return "sd2"
    if any(k.startswith("cond_stage_model.roberta.") for k in keys):
        raise _unsupported("AltDiffusion (XLM-RoBERTa text encoder)", shapes)
    if any(k.startswith(SD1_CLIP_PREFIX) for k in keys):
        return "sd1"
    if not any(k.startswith(UNET_PREFIX) for k in keys):
        raise _unsupported("no Stable Diffusion UNet (model.diffusion_model.*) in the file", shapes)
    raise _unsupported("a UNet without a known text encoder", shapes)


# --------------------------------------------------------------------------------------------
# config inference


# Micro-conditioning values per image: SDXL (original h, w; crop top, left; target h, w), the refiner (original h,
# w; crop top, left; aesthetic score). Each is embedded ``addition_time_embed_dim`` wide beside the pooled text.
TIME_ID_COUNT = MappingProxyType({"sdxl": 6, "sdxl-refiner": 5})


def _heads_64(width: int) -> int:
    return max(1, width // 64)


def _count_transformer_blocks(unet: Mapping[str, tuple], prefix: str) -> int:
    idx = _indices(unet, re.escape(prefix) + r"transformer_blocks\.(\d+)\.")
    return len(idx)


def infer_unet_config(unet: Mapping[str, tuple], base: dict, family: str,
                      text_projection_dim: int | None = None) -> dict:
    """UNet2DConditionModel config from ldm UNet shapes (keys without ``model.diffusion_model.``)."""
    cfg = copy.deepcopy(base)
    try:
        w_in = unet["input_blocks.0.0.weight"]
        cfg["in_channels"] = int(w_in[1])
        cfg["out_channels"] = int(unet["out.2.weight"][0])
    except KeyError as e:
        raise UnsupportedArchitectureError(f"unsupported architecture: the UNet has no {e.args[0]}") from e

    # input blocks: resnet (+ attention) layers, separated by downsamplers
    levels: list[dict[str, list]] = [{"ch": [], "depth": []}]
    for i in _indices(unet, r"input_blocks\.(\d+)\.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in unet:
            levels.append({"ch": [], "depth": []})
            continue
        key = f"input_blocks.{i}.0.out_layers.3.weight"
        if key not in unet:
            raise UnsupportedArchitectureError(f"unsupported architecture: unexpected UNet input block {i}")
        levels[-1]["ch"].append(int(unet[key][0]))
        levels[-1]["depth"].append(_count_transformer_blocks(unet, f"input_blocks.{i}.1."))
    n_levels = len(levels)
    layers = len(levels[0]["ch"])
    if layers == 0 or any(len(lv["ch"]) != layers for lv in levels):
        raise UnsupportedArchitectureError("unsupported architecture: irregular UNet (levels of different depth)")
    block_out = []
    down_types = []
    down_depth: list[int] = []
    for lv in levels:
        if len(set(lv["ch"])) != 1:
            raise UnsupportedArchitectureError("unsupported architecture: UNet level with mixed widths")
        block_out.append(lv["ch"][0])
        depths = lv["depth"]
        if all(d == 0 for d in depths):
            down_types.append("DownBlock2D")
            down_depth.append(1)
        elif all(d > 0 for d in depths) and len(set(depths)) == 1:
            down_types.append("CrossAttnDownBlock2D")
            down_depth.append(depths[0])
        else:
            raise UnsupportedArchitectureError(
                "unsupported architecture: UNet level with uneven transformer depth " + str(depths))

    # output blocks: (layers + 1) per level, deepest level first
    out_idx = _indices(unet, r"output_blocks\.(\d+)\.")
    if len(out_idx) != n_levels * (layers + 1):
        raise UnsupportedArchitectureError(
            f"unsupported architecture: {len(out_idx)} UNet output blocks for {n_levels} levels of {layers}")
    up_types = []
    up_depth: list[int] = []
    for lvl in range(n_levels):
        depths = [_count_transformer_blocks(unet, f"output_blocks.{lvl * (layers + 1) + j}.1.")
                  for j in range(layers + 1)]
        if all(d == 0 for d in depths):
            up_types.append("UpBlock2D")
            up_depth.append(1)
        elif all(d > 0 for d in depths) and len(set(depths)) == 1:
            up_types.append("CrossAttnUpBlock2D")
            up_depth.append(depths[0])
        else:
            raise UnsupportedArchitectureError(
                "unsupported architecture: UNet up level with uneven transformer depth " + str(depths))
    mid_depth = _count_transformer_blocks(unet, "middle_block.1.")
    if mid_depth == 0:
        raise UnsupportedArchitectureError("unsupported architecture: UNet middle block without attention")
    if down_types[-1] == "DownBlock2D":
        # diffusers builds the middle block with the last level's depth, which a level without attention leaves
        # free (the SDXL refiner: plain outer levels, depth 4 in the middle)
        down_depth[-1] = mid_depth
    if mid_depth != down_depth[-1]:
        raise UnsupportedArchitectureError(
            f"unsupported architecture: middle block depth {mid_depth} differs from the last level's {down_depth[-1]}")

    attn_key = next((k for k in unet if k.endswith("transformer_blocks.0.attn2.to_k.weight")), None)
    proj_key = next((k for k in unet if k.endswith(".proj_in.weight")), None)
    if attn_key is None or proj_key is None:
        raise UnsupportedArchitectureError("unsupported architecture: UNet without cross-attention")
    cfg["cross_attention_dim"] = int(unet[attn_key][1])
    cfg["use_linear_projection"] = len(unet[proj_key]) == 2

    cfg["block_out_channels"] = block_out
    cfg["layers_per_block"] = layers
    cfg["down_block_types"] = down_types
    cfg["up_block_types"] = up_types
    if family == "sd1":
        # SD1: 8 heads everywhere (diffusers' "attention_head_dim" is the head count here)
        cfg["attention_head_dim"] = 8 if all(c % 8 == 0 for c in block_out) else 1
    else:
        cfg["attention_head_dim"] = [_heads_64(c) for c in block_out]
    reverse_down = list(reversed(down_depth))
    # a level without attention has no depth of its own: the mirrored down level's value keeps the config plain
    up_depth = [reverse_down[i] if t == "UpBlock2D" else d for i, (t, d) in enumerate(zip(up_types, up_depth))]
    if family in SDXL_FAMILIES or any(d != 1 for d in down_depth + up_depth):
        cfg["transformer_layers_per_block"] = down_depth
        cfg["reverse_transformer_layers_per_block"] = (
            None if up_depth == reverse_down else [[d] * (layers + 1) for d in up_depth])
    else:
        cfg["transformer_layers_per_block"] = 1
        cfg["reverse_transformer_layers_per_block"] = None

    t_dim = int(unet["time_embed.0.weight"][0])
    cfg["time_embedding_dim"] = None if t_dim == 4 * block_out[0] else t_dim

    if "label_emb.0.0.weight" in unet:
        if family not in SDXL_FAMILIES:
            raise UnsupportedArchitectureError("unsupported architecture: class-conditioned UNet (label_emb)")
        adm_in = int(unet["label_emb.0.0.weight"][1])
        proj = text_projection_dim if text_projection_dim is not None else 1280
        values = TIME_ID_COUNT[family]
        if (adm_in - proj) <= 0 or (adm_in - proj) % values:
            raise UnsupportedArchitectureError(
                f"unsupported architecture: SDXL size conditioning of width {adm_in} with a {proj}-wide pooled text embedding")
        cfg["addition_embed_type"] = "text_time"
        cfg["projection_class_embeddings_input_dim"] = adm_in
        cfg["addition_time_embed_dim"] = (adm_in - proj) // values
    elif family in SDXL_FAMILIES:
        raise UnsupportedArchitectureError("unsupported architecture: SDXL UNet without size conditioning (label_emb)")
    return cfg


def infer_vae_config(vae: Mapping[str, tuple], base: dict) -> dict:
    """AutoencoderKL config from ldm VAE shapes (keys without ``first_stage_model.``)."""
    cfg = copy.deepcopy(base)
    try:
        cfg["in_channels"] = int(vae["encoder.conv_in.weight"][1])
        cfg["out_channels"] = int(vae["decoder.conv_out.weight"][0])
        cfg["latent_channels"] = int(vae["post_quant_conv.weight"][0]) if "post_quant_conv.weight" in vae \
            else int(vae["decoder.conv_in.weight"][1])
        levels = _indices(vae, r"encoder\.down\.(\d+)\.")
        block_out = [int(vae[f"encoder.down.{i}.block.0.conv2.weight"][0]) for i in levels]
    except KeyError as e:
        raise UnsupportedArchitectureError(f"unsupported architecture: the VAE has no {e.args[0]}") from e
    if not block_out:
        raise UnsupportedArchitectureError("unsupported architecture: VAE encoder without levels")
    cfg["block_out_channels"] = block_out
    cfg["layers_per_block"] = len(_indices(vae, r"encoder\.down\.0\.block\.(\d+)\."))
    cfg["down_block_types"] = ["DownEncoderBlock2D"] * len(block_out)
    cfg["up_block_types"] = ["UpDecoderBlock2D"] * len(block_out)
    cfg["mid_block_add_attention"] = any(k.startswith("encoder.mid.attn_1.") for k in vae)
    return cfg


def _layers_from_file(count: int, width: int, base: dict, *, drop_last: bool) -> int:
    """Text encoder depth. ``drop_last``: the original model reads the penultimate layer (SD2),
    so diffusers keeps one layer fewer than the file. A real-width encoder that misses only its
    unused final layer (pruned files) keeps the shipped depth."""
    n = count - 1 if drop_last else count
    if width == base["hidden_size"] and n == base["num_hidden_layers"] - 1:
        n = base["num_hidden_layers"]
    return n


def infer_clip_config(te: Mapping[str, tuple], base: dict) -> dict:
    """CLIPTextConfig dict from HF-layout CLIP shapes (keys after ``text_model.``)."""
    cfg = copy.deepcopy(base)
    try:
        vocab, hidden = te["embeddings.token_embedding.weight"]
        cfg["max_position_embeddings"] = int(te["embeddings.position_embedding.weight"][0])
        cfg["intermediate_size"] = int(te["encoder.layers.0.mlp.fc1.weight"][0])
    except KeyError as e:
        raise UnsupportedArchitectureError(f"unsupported architecture: the CLIP text encoder has no {e.args[0]}") from e
    cfg["vocab_size"], cfg["hidden_size"] = int(vocab), int(hidden)
    cfg["num_attention_heads"] = _heads_64(int(hidden))
    count = len(_indices(te, r"encoder\.layers\.(\d+)\."))
    cfg["num_hidden_layers"] = _layers_from_file(count, int(hidden), base, drop_last=False)
    if "text_projection.weight" in te:
        cfg["projection_dim"] = int(te["text_projection.weight"][0])
    elif int(hidden) != base["hidden_size"]:
        cfg["projection_dim"] = int(hidden)  # unused by CLIPTextModel; keep toy configs self-consistent
    return cfg


def infer_open_clip_config(te: Mapping[str, tuple], base: dict, *, drop_last: bool) -> dict:
    """CLIPTextConfig dict from OpenCLIP shapes (keys after ``...model.``)."""
    cfg = copy.deepcopy(base)
    try:
        vocab, hidden = te["token_embedding.weight"]
        cfg["max_position_embeddings"] = int(te["positional_embedding"][0])
        cfg["intermediate_size"] = int(te["transformer.resblocks.0.mlp.c_fc.weight"][0])
    except KeyError as e:
        raise UnsupportedArchitectureError(f"unsupported architecture: the OpenCLIP text encoder has no {e.args[0]}") from e
    cfg["vocab_size"], cfg["hidden_size"] = int(vocab), int(hidden)
    cfg["num_attention_heads"] = _heads_64(int(hidden))
    count = len(_indices(te, r"transformer\.resblocks\.(\d+)\."))
    layers = _layers_from_file(count, int(hidden), base, drop_last=drop_last)
    if layers < 1:
        raise UnsupportedArchitectureError("unsupported architecture: OpenCLIP text encoder without layers")
    cfg["num_hidden_layers"] = layers
    if "text_projection" in te and not drop_last:
        cfg["projection_dim"] = int(te["text_projection"][1])
    elif int(hidden) != base["hidden_size"]:
        cfg["projection_dim"] = int(hidden)  # no projection in the file (or unused): toy width
    return cfg


def _optional_text_keys(layout: str, cfg: dict, family: str) -> list[str]:
    """diffusers-layout keys a file may lack without changing what the pipeline computes
    (SDXL and its refiner read the penultimate hidden state)."""
    if family not in SDXL_FAMILIES:
        return []
    last = cfg["num_hidden_layers"] - 1
    names = [f"encoder.layers.{last}.{n}.{p}" for n in (
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
        "layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2") for p in ("weight", "bias")]
    names += ["final_layer_norm.weight", "final_layer_norm.bias"]
    if layout == "open_clip":
        names += ["text_projection.weight"]
    return names


# --------------------------------------------------------------------------------------------
# the detector


def detect(state_dict_or_shapes: Mapping[str, Any]) -> Detection:
    """Classify a (key-normalised) original-layout state dict and infer its component configs."""
    shapes = {k: shape_of(v) for k, v in state_dict_or_shapes.items()}
    family = _family(shapes)
    unet = _sub(shapes, UNET_PREFIX)
    if "input_blocks.0.0.weight" not in unet:
        raise _unsupported(f"{family} text encoder without a UNet", shapes)
    in_ch = unet["input_blocks.0.0.weight"][1]
    out_ch = unet.get("out.2.weight", (0,))[0]
    if in_ch == 8 and family == "sd1":
        raise _unsupported("instruct-pix2pix (8 input channels)", shapes)
    if in_ch not in (out_ch, out_ch * 2 + 1):
        raise _unsupported(f"a UNet with {in_ch} input and {out_ch} output channels", shapes)
    is_inpainting = in_ch == out_ch * 2 + 1

    configs: dict[str, dict] = {}
    optional: dict[str, list[str]] = {}
    notes: list[str] = []
    text_encoders = TEXT_ENCODER_PREFIXES[family]
    proj_dim = None
    for i, (layout, prefix) in enumerate(text_encoders):
        name = "text_encoder" if i == 0 else f"text_encoder_{i + 1}"
        base = shipped_config(family, name)
        te = _sub(shapes, prefix)
        if layout == "clip":
            cfg = infer_clip_config(te, base)
        else:
            cfg = infer_open_clip_config(te, base, drop_last=(family == "sd2"))
            proj_dim = cfg.get("projection_dim")
        configs[name] = cfg
        optional[name] = _optional_text_keys(layout, cfg, family)

    configs["unet"] = infer_unet_config(unet, shipped_config(family, "unet", is_inpainting), family,
                                        text_projection_dim=proj_dim)
    vae = _sub(shapes, VAE_PREFIX)
    has_vae = "encoder.conv_in.weight" in vae
    if has_vae:
        configs["vae"] = infer_vae_config(vae, shipped_config(family, "vae"))
    else:
        notes.append("the checkpoint has no VAE (first_stage_model.*)")

    if family == "sd2" and not is_inpainting:
        prediction_type = None  # decided by sd2_uses_v_prediction() on the built UNet
    elif family in SDXL_FAMILIES and "v_pred" in shapes:
        prediction_type = "v_prediction"
    else:
        prediction_type = "epsilon"
    ztsnr = family in SDXL_FAMILIES and "ztsnr" in shapes
    native = native_size_for(family, prediction_type, is_inpainting) if prediction_type else None
    det = Detection(family=family, is_inpainting=is_inpainting, prediction_type=prediction_type,
                    native_size=native, configs=configs, text_encoders=list(text_encoders),
                    has_vae=has_vae, zero_terminal_snr=ztsnr, optional_text_keys=optional, notes=notes)
    if native is not None:
        apply_native_size(det, native)
    return det


def vae_scale_factor(vae_config: dict | None) -> int:
    if not vae_config:
        return 8
    return 2 ** (len(vae_config.get("block_out_channels", [0, 0, 0, 0])) - 1)


def apply_native_size(det: Detection, native: int) -> None:
    det.native_size = native
    scale = vae_scale_factor(det.configs.get("vae"))
    det.configs["unet"]["sample_size"] = native // scale
    if "vae" in det.configs:
        det.configs["vae"]["sample_size"] = native


# --------------------------------------------------------------------------------------------
# SD2: v-prediction or epsilon?


def sd2_uses_v_prediction(unet) -> bool:
    """The reference UI's test (``is_using_v_parameterization_for_sd2``): an all-0.5 8x8 latent at
    t=999 with an all-0.5 two-token context; a v-prediction UNet returns ``mean(out - x) < -1``."""
    import torch

    param = next(unet.parameters())
    device, dtype = param.device, param.dtype
    cfg = unet.config
    with torch.no_grad():
        x = torch.full((1, cfg.in_channels, 8, 8), 0.5, device=device, dtype=dtype)
        ctx = torch.full((1, 2, cfg.cross_attention_dim), 0.5, device=device, dtype=dtype)
        t = torch.tensor([999], device=device)
        kwargs = {}
        if getattr(cfg, "addition_embed_type", None) == "text_time":  # not used for SD2; kept general
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.zeros(1, cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim,
                                           device=device, dtype=dtype),
                "time_ids": torch.zeros(1, 6, device=device, dtype=dtype)}
        out = unet(x, t, encoder_hidden_states=ctx, **kwargs).sample
        diff = (out.float() - x.float()).mean().item()
    return diff < -1
