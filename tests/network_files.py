"""Adapter files for the tiny test models, written in the layouts real trainers use (shared test helper).

`kohya_lora(components)` builds a kohya-style LoRA/LoCon state dict (`lora_unet_*`, `lora_te_*` or
`lora_te1_*`/`lora_te2_*`, `.lora_down.weight`, `.lora_up.weight`, `.alpha`) over every Linear and Conv2d of the
UNet's attention/resnet blocks and the text encoders' attention and MLP layers.
"""
from __future__ import annotations

from pathlib import Path

import torch

UNET_PARTS = ("attentions", "resnets", "downsamplers", "upsamplers", "conv_in", "conv_out", "time_embedding")
TE_PARTS = ("self_attn", "mlp")


def _kohya_te_path(path: str) -> str:
    """transformers 5 flattens CLIPTextModel (`encoder.layers...`); kohya names always say `text_model_...`."""
    path = path if path.startswith("text_model.") else "text_model." + path
    return path.replace(".", "_")


def _pair(module: torch.nn.Module, rank: int, gen: torch.Generator, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(module, torch.nn.Conv2d):
        out_ch, in_ch, kh, kw = module.weight.shape
        down = torch.randn(rank, in_ch, kh, kw, generator=gen) * scale
        up = torch.randn(out_ch, rank, 1, 1, generator=gen) * scale
    else:
        out_f, in_f = module.weight.shape
        down = torch.randn(rank, in_f, generator=gen) * scale
        up = torch.randn(out_f, rank, generator=gen) * scale
    return down, up


def kohya_lora(components: dict, *, rank: int = 4, alpha: float | None = 2.0, seed: int = 0, scale: float = 0.2,
               unet: bool = True, text_encoder: bool = True, conv: bool = True) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}

    def add(prefix: str, module: torch.nn.Module) -> None:
        down, up = _pair(module, rank, gen, scale)
        out[f"{prefix}.lora_down.weight"] = down
        out[f"{prefix}.lora_up.weight"] = up
        if alpha is not None:
            out[f"{prefix}.alpha"] = torch.tensor(float(alpha))

    if unet:
        for path, module in components["unet"].named_modules():
            kinds = (torch.nn.Linear, torch.nn.Conv2d) if conv else (torch.nn.Linear,)
            if isinstance(module, kinds) and any(part in path for part in UNET_PARTS):
                add("lora_unet_" + path.replace(".", "_"), module)
    if text_encoder:
        encoders = [components["text_encoder"]] + ([components["text_encoder_2"]] if "text_encoder_2" in components else [])
        prefixes = ["lora_te_"] if len(encoders) == 1 else ["lora_te1_", "lora_te2_"]
        for prefix, encoder in zip(prefixes, encoders):
            for path, module in encoder.named_modules():
                if isinstance(module, torch.nn.Linear) and any(part in path for part in TE_PARTS):
                    add(prefix + _kohya_te_path(path), module)
    return out


def save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path
