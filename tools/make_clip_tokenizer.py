#!/usr/bin/env python3
"""Regenerate the CLIP tokenizer files shipped under modules/models/model_configs/clip_tokenizer/.

The input is OpenAI's BPE merge list ``bpe_simple_vocab_16e6.txt.gz`` (MIT licence,
(c) 2021 OpenAI), as shipped inside the PyPI wheels of clip-anytorch and open_clip_torch.
Get it without installing anything::

    pip download --no-deps clip-anytorch==2.6.0 -d /tmp/clip
    unzip -o /tmp/clip/clip_anytorch-2.6.0-py3-none-any.whl 'clip/bpe_simple_vocab_16e6.txt.gz' -d /tmp/clip
    python tools/make_clip_tokenizer.py /tmp/clip/clip/bpe_simple_vocab_16e6.txt.gz
    # or straight from the wheel:
    python tools/make_clip_tokenizer.py /tmp/clip/clip_anytorch-2.6.0-py3-none-any.whl

The construction follows CLIP's SimpleTokenizer:

* the merge list is the gzip's lines 1 .. 48894 (line 0 is a version header);
* the vocabulary is the 256 byte symbols of the reversible byte-to-unicode table, the
  same 256 with an end-of-word marker ``</w>``, every merge joined into one symbol, then
  ``<|startoftext|>`` and ``<|endoftext|>``: 49408 entries, id = position;
* ``merges.txt`` is ``#version: 0.2`` followed by the merges, one per line.

The output equals the tokenizer files of the official SD1.5 / SDXL repositories
(vocab.json as a dict, merges.txt byte for byte).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import zipfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "modules" / "models" / "model_configs" / "clip_tokenizer"
NUM_MERGES = 49152 - 256 - 2  # 48894: CLIP's vocabulary size minus bytes and specials
EXPECTED_VOCAB_SIZE = 49408


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for the bytes 0..255, in CLIP's order.

    Printable latin-1 bytes map to themselves; the others (controls, space, ...) are
    moved, in increasing byte order, to code points 256, 257, ...
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    byte_order = list(printable)
    code_points = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_order.append(b)
            code_points.append(256 + extra)
            extra += 1
    return [chr(c) for c in code_points]


WHEEL_MEMBERS = ("clip/bpe_simple_vocab_16e6.txt.gz", "open_clip/bpe_simple_vocab_16e6.txt.gz")


def read_bpe(source: Path) -> bytes:
    """The decompressed merge list, from the .gz itself or from inside a downloaded wheel."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as whl:
            member = next((m for m in WHEEL_MEMBERS if m in whl.namelist()), None)
            if member is None:
                raise ValueError(f"{source} holds none of {', '.join(WHEEL_MEMBERS)}")
            return gzip.decompress(whl.read(member))
    return gzip.decompress(source.read_bytes())


def build(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    lines = read_bpe(bpe_gz).decode("utf-8").split("\n")
    merges = lines[1 : NUM_MERGES + 1]
    if len(merges) != NUM_MERGES or any(len(m.split()) != 2 for m in merges):
        raise ValueError(f"{bpe_gz} does not look like CLIP's bpe_simple_vocab_16e6.txt.gz")
    symbols = byte_symbols()
    vocab_list = symbols + [s + "</w>" for s in symbols]
    vocab_list += ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    if len(vocab) != EXPECTED_VOCAB_SIZE:
        raise ValueError(f"expected {EXPECTED_VOCAB_SIZE} vocabulary entries, got {len(vocab)}")
    return vocab, merges


def write(vocab: dict[str, int], merges: list[str], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    # Same layout as the files in the official repositories: sorted keys, 2-space indent.
    text = json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out_dir / "vocab.json").write_text(text, encoding="utf-8", newline="\n")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges),
                                        encoding="utf-8", newline="\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bpe_gz", type=Path, help="bpe_simple_vocab_16e6.txt.gz, or a clip-anytorch / open_clip_torch wheel")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    vocab, merges = build(args.bpe_gz)
    write(vocab, merges, args.out)
    for name in ("vocab.json", "merges.txt"):
        digest = hashlib.md5((args.out / name).read_bytes()).hexdigest()
        print(f"{args.out / name}: {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
