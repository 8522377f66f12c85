"""diffusers ``UNet2DConditionModel`` module paths -> ldm/sgm ("compvis") UNet module names.

Kohya's SDXL trainer (and some SD1 tools, and LyCORIS files made from ComfyUI) name UNet modules
after the original ldm/sgm code: ``input_blocks.4.1.transformer_blocks.0.attn1.to_k`` instead of
diffusers' ``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k``. The correspondence is a
pure function of the UNet config (blocks, layers per block, which blocks have attention):

* ``input_blocks.0.0`` is ``conv_in``; then, per down block, one ``input_blocks.N`` per layer holding
  the resnet at ``.0`` and (cross-attention blocks) the transformer at ``.1``, followed by one
  ``input_blocks.N.0.op`` for the downsampler (every block but the last);
* ``middle_block.0`` / ``.1`` / ``.2`` are resnet 0, the transformer, resnet 1;
* per up block, one ``output_blocks.N`` per layer (layers_per_block + 1 of them) with the resnet at
  ``.0``, the transformer at ``.1`` and, in a block's last layer, the upsampler at ``.2`` (``.1`` when
  the block has no attention);
* ``time_embed.0/2``, ``label_emb.0.0/0.2`` (SDXL size conditioning), ``out.0`` / ``out.2``.

Inside a resnet the sub-modules are renamed (``in_layers.0`` = ``norm1``, ...); inside a
transformer the names are the same in both layouts. Written from the layout description in the
project spec; no third-party code was copied.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping, Sequence

__all__ = ["RESNET_PARTS", "BlockEntry", "block_entries", "block_map", "diffusers_to_ldm"]

# diffusers ResnetBlock2D child -> ldm ResBlock child
RESNET_PARTS: Mapping[str, str] = MappingProxyType({
    "norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection",
})

# single modules that sit outside the down/mid/up blocks
_LEAVES: Mapping[str, str] = MappingProxyType({
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0", "conv_out": "out.2",
})


@dataclass(frozen=True)
class BlockEntry:
    diffusers: str   # e.g. "down_blocks.1.attentions.0"
    ldm: str         # e.g. "input_blocks.4.1"
    kind: str        # "resnet" | "attention" | "downsample" | "upsample" | "leaf"


def _get(config: Any, name: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def _per_block(value: Any, n: int) -> list[int]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(f"UNet config: layers_per_block {list(value)} does not have one entry per block ({n})")
        return [int(v) for v in value]
    return [int(value)] * n


def _has_attention(block_type: str) -> bool:
    return "Attn" in block_type


def block_entries(config: Any) -> list[BlockEntry]:
    """Every diffusers block (resnet, transformer, sampler, leaf) with its ldm name, from a UNet
    config (a ``FrozenDict``, a dict, or any object with the config attributes)."""
    down_types = list(_get(config, "down_block_types") or ())
    up_types = list(_get(config, "up_block_types") or ())
    n = len(down_types)
    if n == 0 or len(up_types) != n:
        raise ValueError(f"UNet config: {n} down blocks and {len(up_types)} up blocks")
    layers = _per_block(_get(config, "layers_per_block", 2), n)
    entries = [BlockEntry(d, l, "leaf") for d, l in _LEAVES.items()]

    idx = 1
    for b, btype in enumerate(down_types):
        for j in range(layers[b]):
            entries.append(BlockEntry(f"down_blocks.{b}.resnets.{j}", f"input_blocks.{idx}.0", "resnet"))
            if _has_attention(btype):
                entries.append(BlockEntry(f"down_blocks.{b}.attentions.{j}", f"input_blocks.{idx}.1", "attention"))
            idx += 1
        if b < n - 1:  # diffusers adds a downsampler to every block but the last
            entries.append(BlockEntry(f"down_blocks.{b}.downsamplers.0", f"input_blocks.{idx}.0", "downsample"))
            idx += 1

    mid_type = _get(config, "mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid_type:
        mid_attn = _has_attention(mid_type)
        entries.append(BlockEntry("mid_block.resnets.0", "middle_block.0", "resnet"))
        if mid_attn:
            entries.append(BlockEntry("mid_block.attentions.0", "middle_block.1", "attention"))
        entries.append(BlockEntry("mid_block.resnets.1", f"middle_block.{2 if mid_attn else 1}", "resnet"))

    idx = 0
    up_layers = list(reversed(layers))
    for b, btype in enumerate(up_types):
        attn = _has_attention(btype)
        count = up_layers[b] + 1
        for j in range(count):
            entries.append(BlockEntry(f"up_blocks.{b}.resnets.{j}", f"output_blocks.{idx}.0", "resnet"))
            if attn:
                entries.append(BlockEntry(f"up_blocks.{b}.attentions.{j}", f"output_blocks.{idx}.1", "attention"))
            if j == count - 1 and b < n - 1:
                entries.append(BlockEntry(f"up_blocks.{b}.upsamplers.0", f"output_blocks.{idx}.{2 if attn else 1}",
                                          "upsample"))
            idx += 1
    return entries


def _rest_to_ldm(kind: str, rest: str) -> str | None:
    if kind == "leaf":
        return "" if rest == "" else None
    if kind == "attention":
        return rest
    head, dot, tail = rest.partition(".")
    if kind == "resnet":
        return RESNET_PARTS.get(head, head) + dot + tail if head else rest
    if kind == "downsample":
        return "op" + dot + tail if head == "conv" else rest
    return rest  # upsample: "conv" in both layouts


def block_map(config: Any) -> dict[str, BlockEntry]:
    """:func:`block_entries` keyed by diffusers block path."""
    return {e.diffusers: e for e in block_entries(config)}


def diffusers_to_ldm(path: str, blocks: Mapping[str, BlockEntry]) -> str | None:
    """ldm name of a diffusers module path (``None`` when it has none, e.g. ``time_proj``).
    ``blocks`` comes from :func:`block_map`; the longest block path that prefixes ``path`` wins."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        entry = blocks.get(".".join(parts[:cut]))
        if entry is None:
            continue
        rest = _rest_to_ldm(entry.kind, ".".join(parts[cut:]))
        if rest is None:
            return None
        return entry.ldm + ("." + rest if rest else "")
    return None
