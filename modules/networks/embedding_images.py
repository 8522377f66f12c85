"""Textual-inversion embeddings stored inside images (spec §2.7), decoding only.

Two carriers, tried in this order:
- a PNG text chunk `sd-ti-embedding` holding base64(JSON);
- "data in pixels": the zlib-compressed JSON, split into low and high nibbles, laid out as RGB blocks
  as tall as the image on both sides of the picture (low block left, high block right, each separated
  from the picture by a 1-px black column), XOR-ed with a fixed LCG stream.

In the JSON, tensors are objects `{"TORCHTENSOR": nested list}`.
"""
from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

import numpy as np
import torch

TEXT_CHUNK_KEY = "sd-ti-embedding"
TENSOR_KEY = "TORCHTENSOR"

# LCG of the pixel carrier: x -> (a*x + c) mod m from seed 0; each output is the new state % 255.
LCG_M, LCG_A, LCG_C, LCG_SEED = 2 ** 32, 1664525, 1013904223, 0
# A JSON embedding bigger than this is not an embedding but a decompression bomb.
MAX_JSON_BYTES = 64 * 1024 * 1024


def _tensor_hook(obj: dict) -> Any:
    if TENSOR_KEY in obj:
        try:
            return torch.from_numpy(np.asarray(obj[TENSOR_KEY], dtype=np.float32))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{TENSOR_KEY} entry is not a rectangular list of numbers ({e})") from e
    return obj


def parse_json(raw: bytes | str) -> dict:
    """The embedding dict of a JSON document, tensors rebuilt. ValueError if it is not a JSON object."""
    try:
        data = json.loads(raw, object_hook=_tensor_hook)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"the embedded data is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError("the embedded data is not a JSON object")
    return data


def decode_text_chunk(text: str | bytes) -> dict:
    """`sd-ti-embedding` chunk value -> embedding dict. ValueError if it is not base64 JSON."""
    try:
        raw = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"the {TEXT_CHUNK_KEY} text chunk is not base64 ({e})") from e
    return parse_json(raw)


def lcg_nibbles(count: int) -> np.ndarray:
    """The first `count` values of the carrier's XOR stream: LCG output % 255, low nibble, as uint8.

    Computed in blocks with the LCG's jump-ahead (x[n+K] = A_K*x[n] + C_K mod m) so that large images
    cost numpy time, not Python-loop time. uint64 products wrap mod 2**64, which 2**32 divides, so the
    result mod 2**32 stays exact."""
    if count <= 0:
        return np.zeros(0, dtype=np.uint8)
    block = min(count, 4096)
    first = np.empty(block, dtype=np.uint64)
    x = LCG_SEED
    for i in range(block):
        x = (LCG_A * x + LCG_C) % LCG_M
        first[i] = x
    # A_K = a^K, C_K = c*(a^(K-1) + ... + 1), both mod m.
    a_k, c_k = 1, 0
    for _ in range(block):
        a_k, c_k = (a_k * LCG_A) % LCG_M, (c_k * LCG_A + LCG_C) % LCG_M
    blocks = [first]
    total = block
    mask = np.uint64(LCG_M - 1)
    with np.errstate(over="ignore"):
        while total < count:
            blocks.append((blocks[-1] * np.uint64(a_k) + np.uint64(c_k)) & mask)
            total += block
    states = np.concatenate(blocks)[:count]
    return ((states % np.uint64(255)) & np.uint64(0x0F)).astype(np.uint8)


def _crop_black(pixels: np.ndarray) -> np.ndarray:
    """Removes outer rows and columns that are entirely black."""
    lit = pixels.any(axis=2)
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    if rows.size == 0:
        return pixels[:0, :0]
    return pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _unxor(block: np.ndarray) -> np.ndarray:
    return block ^ lcg_nibbles(block.size).reshape(block.shape)


def extract_pixel_data(image) -> dict | None:
    """The embedding dict carried in the pixels of a PIL image, or None when the image carries none
    (no pair of black separator columns, blocks of unequal size, or data that is not zlib/JSON)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    nibbles = _crop_black(pixels) & 0x0F
    if nibbles.size == 0:
        return None
    black = np.flatnonzero(nibbles.sum(axis=(0, 2), dtype=np.int64) == 0)
    if black.size < 2:
        return None
    lower, upper = nibbles[:, :black[0]], nibbles[:, black[-1] + 1:]
    if lower.size == 0 or lower.shape != upper.shape:
        return None
    data = ((_unxor(upper) << 4) | _unxor(lower)).tobytes()
    # The blocks are padded after the zlib stream; decompressobj stops at its end and ignores the rest.
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_JSON_BYTES)
    except zlib.error:
        return None
    if not inflater.eof:
        return None
    try:
        return parse_json(raw)
    except ValueError:
        return None


def read_image_embedding_data(image) -> dict | None:
    """Embedding dict from the text chunk, else from the pixels; None if the image has neither.
    ValueError if the text chunk exists but is broken."""
    text = (getattr(image, "text", None) or {}).get(TEXT_CHUNK_KEY) or image.info.get(TEXT_CHUNK_KEY)
    if text:
        return decode_text_chunk(text)
    return extract_pixel_data(image)
