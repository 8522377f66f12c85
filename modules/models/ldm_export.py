"""diffusers modules -> the original single-file checkpoint layout (what the reference UI, ComfyUI
and model-merging tools read), and :func:`save_single_file` to write it as .safetensors.

Layouts written (names and shapes as in real files):

* UNet: ``model.diffusion_model.*`` (ldm ``input_blocks`` / ``middle_block`` / ``output_blocks``;
  SDXL's size conditioning as ``label_emb.0.{0,2}``).
* VAE: ``first_stage_model.*`` with the mid-block attention as 1x1 convolution weights.
* SD1: HF CLIP under ``cond_stage_model.transformer.text_model.*``.
* SD2: OpenCLIP under ``cond_stage_model.model.*`` (``in_proj_weight`` = q|k|v, ``positional_embedding``,
  ``ln_final``, ``text_projection`` transposed). The original model reads the penultimate layer of a
  one-layer-deeper encoder, so one more (zero) block and an identity ``text_projection`` are written
  after the diffusers layers: the file then means the same thing to every loader.
* SDXL: CLIP-L under ``conditioner.embedders.0.transformer.text_model.*``, OpenCLIP bigG under
  ``conditioner.embedders.1.model.*``; a v-prediction scheduler adds the ``v_pred`` marker key
  (and ``ztsnr`` for zero-terminal-SNR), as the reference UI's dev branch reads them.
"""
from __future__ import annotations

import json
import os
import re
import struct
import sys
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import torch

__all__ = [
    "unet_to_ldm",
    "vae_to_ldm",
    "clip_to_ldm",
    "open_clip_to_ldm",
    "components_to_ldm",
    "save_single_file",
    "write_safetensors",
]

_RESNET = MappingProxyType({"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                            "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"})


def _cfg(config: Any) -> Mapping[str, Any]:
    return config if isinstance(config, Mapping) else dict(config)


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{_RESNET.get(head, head)}.{tail}"


def unet_to_ldm(sd: Mapping[str, torch.Tensor], config: Any, prefix: str = "model.diffusion_model.") -> dict:
    """UNet2DConditionModel state dict -> ldm/sgm UNet keys."""
    cfg = _cfg(config)
    per = int(cfg["layers_per_block"]) + 1
    up_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    simple = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
              "time_embedding.linear_2.": "time_embed.2.", "add_embedding.linear_1.": "label_emb.0.0.",
              "add_embedding.linear_2.": "label_emb.0.2.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    out = {}
    for k, v in sd.items():
        new = None
        for a, b in simple.items():
            if k.startswith(a):
                new = b + k[len(a):]
                break
        if new is None:
            if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"input_blocks.{1 + b * per + l}.0.{_resnet(rest)}"
            elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", k):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"input_blocks.{1 + b * per + l}.1.{rest}"
            elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k):
                b, rest = int(m[1]), m[2]
                new = f"input_blocks.{(b + 1) * per}.0.op.{rest}"
            elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", k):
                new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
            elif m := re.match(r"mid_block\.attentions\.0\.(.+)", k):
                new = f"middle_block.1.{m[1]}"
            elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"output_blocks.{b * per + l}.0.{_resnet(rest)}"
            elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", k):
                b, l, rest = int(m[1]), int(m[2]), m[3]
                new = f"output_blocks.{b * per + l}.1.{rest}"
            elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k):
                b, rest = int(m[1]), m[2]
                new = f"output_blocks.{b * per + per - 1}.{2 if up_attn[b] else 1}.conv.{rest}"
            else:
                raise ValueError(f"no original-layout name for UNet key {k!r}")
        out[prefix + new] = v
    return out


def vae_to_ldm(sd: Mapping[str, torch.Tensor], config: Any, prefix: str = "first_stage_model.") -> dict:
    """AutoencoderKL state dict -> ldm VAE keys (mid attention as 1x1 conv weights)."""
    cfg = _cfg(config)
    n = len(cfg["block_out_channels"])
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
    out = {}
    for k, v in sd.items():
        new = None
        if m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.+)", k):
            new = f"{m[1]}.norm_out.{m[2]}"
        elif re.match(r"(encoder|decoder)\.conv_(in|out)\.|(post_)?quant_conv\.", k):
            new = k
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", k):
            new = f"decoder.up.{n - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k):
            new = f"decoder.up.{n - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", k):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)", k):
            new = f"{m[1]}.mid.attn_1.{attn[m[2]]}.{m[3]}"
            if m[3] == "weight" and m[2] != "group_norm" and v.ndim == 2:
                v = v.reshape(*v.shape, 1, 1)
        if new is None:
            raise ValueError(f"no original-layout name for VAE key {k!r}")
        out[prefix + new] = v
    return out


def _text_model_keys(sd: Mapping[str, torch.Tensor]) -> dict:
    """Strip the ``text_model.`` level (present or not, depending on the transformers class)."""
    return {k.removeprefix("text_model."): v for k, v in sd.items()}


def clip_to_ldm(sd: Mapping[str, torch.Tensor], prefix: str) -> dict:
    """HF CLIPTextModel state dict -> ``<prefix>text_model.*`` (prefix e.g. ``cond_stage_model.transformer.``)."""
    out = {}
    for k, v in _text_model_keys(sd).items():
        if k.endswith("position_ids") or k == "text_projection.weight":
            continue
        out[f"{prefix}text_model.{k}"] = v
    return out


def open_clip_to_ldm(sd: Mapping[str, torch.Tensor], prefix: str, *, extra_final_block: bool = False) -> dict:
    """HF CLIPTextModel(WithProjection) state dict -> OpenCLIP keys under ``prefix``
    (e.g. ``cond_stage_model.model.``). ``extra_final_block`` appends the unused last block and
    an identity projection the original penultimate-layer (SD2) model expects."""
    sd = _text_model_keys(sd)
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    n_layers = 0
    for k, v in sd.items():
        if k.endswith("position_ids"):
            continue
        if k == "embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = v
        elif k == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = v
        elif k.startswith("final_layer_norm."):
            out[prefix + "ln_final." + k.split(".")[-1]] = v
        elif k == "text_projection.weight":
            out[prefix + "text_projection"] = v.t().contiguous()
        elif m := re.match(r"encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", k):
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = v
            n_layers = max(n_layers, int(m[1]) + 1)
        elif m := re.match(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", k):
            if m[2] not in names:
                raise ValueError(f"no OpenCLIP name for text encoder key {k!r}")
            out[f"{prefix}transformer.resblocks.{m[1]}.{names[m[2]]}.{m[3]}"] = v
            n_layers = max(n_layers, int(m[1]) + 1)
        else:
            raise ValueError(f"no OpenCLIP name for text encoder key {k!r}")
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"text encoder layer {layer} lacks some of q/k/v {kind}")
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0)
    if extra_final_block:
        template = f"{prefix}transformer.resblocks.0."
        for k in [k for k in out if k.startswith(template)]:
            out[f"{prefix}transformer.resblocks.{n_layers}." + k[len(template):]] = torch.zeros_like(out[k])
        if prefix + "text_projection" not in out:
            tok = out[prefix + "token_embedding.weight"]
            out[prefix + "text_projection"] = torch.eye(tok.shape[1], dtype=tok.dtype, device=tok.device)
    return out


def _get(components: Any, name: str):
    if isinstance(components, Mapping):
        return components.get(name)
    if name.startswith("text_encoder"):  # a LoadedModel
        i = 0 if name == "text_encoder" else int(name.rsplit("_", 1)[1]) - 1
        tes = getattr(components, "text_encoders", [])
        return tes[i] if i < len(tes) else None
    return getattr(components, name, None)


def _state(module) -> dict:
    return {k: v.detach() for k, v in module.state_dict().items()}


def _scheduler_config(components: Any) -> Mapping[str, Any]:
    sched = _get(components, "scheduler")
    if sched is not None:
        return dict(sched.config) if hasattr(sched, "config") else dict(sched)
    cfg = getattr(components, "scheduler_config", None)
    return dict(cfg) if cfg else {}


def components_to_ldm(components: Any, family: str) -> dict[str, torch.Tensor]:
    """All weights of a pipeline's components in the original single-file layout.

    ``components``: a dict with ``unet``, ``vae``, ``text_encoder`` (and ``text_encoder_2`` for
    SDXL; the SDXL refiner's only encoder, OpenCLIP bigG, is its ``text_encoder``), optionally ``scheduler``;
    or a LoadedModel."""
    unet, vae, te = _get(components, "unet"), _get(components, "vae"), _get(components, "text_encoder")
    if unet is None or vae is None or te is None:
        raise ValueError("components need unet, vae and text_encoder")
    out = unet_to_ldm(_state(unet), unet.config)
    out.update(vae_to_ldm(_state(vae), vae.config))
    if family == "sd1":
        out.update(clip_to_ldm(_state(te), "cond_stage_model.transformer."))
    elif family == "sd2":
        out.update(open_clip_to_ldm(_state(te), "cond_stage_model.model.", extra_final_block=True))
    elif family == "sdxl":
        te2 = _get(components, "text_encoder_2")
        if te2 is None:
            raise ValueError("SDXL components need text_encoder_2")
        out.update(clip_to_ldm(_state(te), "conditioner.embedders.0.transformer."))
        out.update(open_clip_to_ldm(_state(te2), "conditioner.embedders.1.model."))
    elif family == "sdxl-refiner":
        out.update(open_clip_to_ldm(_state(te), "conditioner.embedders.0.model."))
    else:
        raise ValueError(f"unknown model family {family!r}")
    if family in ("sdxl", "sdxl-refiner"):
        sched = _scheduler_config(components)
        if sched.get("prediction_type") == "v_prediction":
            out["v_pred"] = torch.zeros(0, dtype=torch.int64)
        if sched.get("rescale_betas_zero_snr"):
            out["ztsnr"] = torch.zeros(0, dtype=torch.int64)
    return out


_ST_DTYPES = MappingProxyType({
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2"})


def write_safetensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
                      metadata: Mapping[str, str] | None = None) -> None:
    """Write a .safetensors file with a canonical layout: tensors sorted by name, header keys
    sorted. (safetensors' own writer orders the metadata map at random, so its bytes differ from
    run to run; these are reproducible.)"""
    if sys.byteorder != "little":  # the format is little-endian; raw tensor bytes are native
        raise RuntimeError("writing .safetensors needs a little-endian machine")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(metadata[k]) for k in sorted(metadata)}
    offset = 0
    order = sorted(tensors)
    for name in order:
        t = tensors[name]
        if t.dtype not in _ST_DTYPES:
            raise ValueError(f"cannot store {name!r}: unsupported dtype {t.dtype}")
        size = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data section starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in order:
            t = tensors[name].detach().to("cpu").contiguous()
            if t.numel():
                f.write(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())


def save_single_file(components: Any, path: str | os.PathLike, family: str,
                     metadata: Mapping[str, str] | None = None, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``components`` as an original-layout .safetensors checkpoint, atomically (a
    temporary file in the same folder, then a rename). ``dtype`` casts the floating-point
    tensors (e.g. torch.float16); by default they keep their dtype."""
    path = Path(path)
    tensors = components_to_ldm(components, family)
    ready = {}
    for k, v in tensors.items():
        v = v.detach()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        ready[k] = v
    meta = {"format": "pt"}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write_safetensors(ready, tmp, meta)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
