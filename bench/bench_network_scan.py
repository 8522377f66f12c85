"""Adapter catalog scan speed: cold start, warm start (persistent index) and refresh.

Creates ``--count`` tiny but valid LoRA safetensors files (a few tensors and some kohya-style
metadata) in ~50 sub-folders of a temporary folder, some with ``.json`` sidecars and preview PNGs,
then times:

- cold: a new NetworkCatalog with no index, until its list is ready (reads every header, writes the index);
- warm: a new NetworkCatalog with the index present, until its list is ready (no file contents read);
- refresh +100: refresh() of the warm catalog after 100 new files were added;
- refresh (no change): refresh() when nothing changed.

    .venv/bin/python bench/bench_network_scan.py [--count 10000] [--repeats 3] [--tag-kb 0] [--keep]

Goals: warm <= 1 s and refresh <= 1 s for 10,000 files on a 2-core machine. The "cold" number
is taken right after writing the files, so their pages are still cached: a real first start from
disk is slower. The index holds every file's metadata, so its size (printed) and the warm start
grow with it: ``--tag-kb 20`` gives files with real-sized kohya metadata.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modules.networks.catalog import NetworkCatalog  # noqa: E402

FOLDERS = 50
# A valid 1x1 PNG: previews only need to exist, but a real one keeps the tree honest.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def safetensors_bytes(i: int, tag_kb: int = 0) -> bytes:
    """A tiny kohya-style LoRA: two F32 tensors of an SD1 text-encoder q_proj plus metadata.

    ``tag_kb`` pads ``ss_tag_frequency`` to about that many KB (real kohya files carry 5-50 KB).
    """
    tags = {"tag a": 3, f"tag{i}": 1}
    for n in range(tag_kb * 1024 // 44):  # each entry is about 44 bytes of JSON
        tags[f"some longer booru tag number {n:05d}"] = n % 17 + 1
    tensors = {
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (1, 768),
        "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha": (),
    }
    header: dict = {
        "__metadata__": {
            "ss_output_name": f"style{i}",
            "ss_network_module": "networks.lora",
            "ss_network_dim": "1",
            "ss_v2": "False",
            "ss_tag_frequency": json.dumps({"1_img": tags}),
        }
    }
    data = b""
    for key, shape in tensors.items():
        n = 4
        for d in shape:
            n *= d
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(data), len(data) + n]}
        data += struct.pack("<f", float(i % 7)) * (n // 4)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + data


def make_tree(root: Path, count: int, start: int = 0, tag_kb: int = 0) -> list[Path]:
    made = []
    for i in range(start, start + count):
        folder = root / "Lora" / f"set{i % FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"lora_{i:05d}.safetensors"
        path.write_bytes(safetensors_bytes(i, tag_kb))
        if i % 10 == 0:
            (folder / f"lora_{i:05d}.json").write_text(
                json.dumps({"activation text": f"trigger{i}", "preferred weight": 0.8}, indent=4), encoding="utf-8"
            )
        if i % 7 == 0:
            (folder / f"lora_{i:05d}.png").write_bytes(PNG_1X1)
        made.append(path)
    return made


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3, help="warm start and no-change refresh: median of this many")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--tag-kb", type=int, default=0,
                    help="pad each file's ss_tag_frequency metadata to about this many KB (real files: 5-50)")
    ns = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-netscan-"))
    try:
        t_make, _ = timed(lambda: make_tree(tmp, ns.count, tag_kb=ns.tag_kb))
        lora_dir = tmp / "Lora"
        index = tmp / "cache" / "lora-index.json"

        def ready(c: NetworkCatalog) -> int:
            return len(c.items())

        cold, n_cold = timed(lambda: ready(NetworkCatalog("lora", [lora_dir], index_path=index, hash_cache=None)))
        warm_times = []
        catalog = None
        for _ in range(max(1, ns.repeats)):
            catalog = NetworkCatalog("lora", [lora_dir], index_path=index, hash_cache=None)
            t, n_warm = timed(lambda: ready(catalog))
            warm_times.append(t)
        warm = statistics.median(warm_times)
        assert n_cold == n_warm == ns.count, (n_cold, n_warm, ns.count)

        noop_times = []
        for _ in range(max(1, ns.repeats)):
            t, changes = timed(catalog.refresh)
            assert not changes, changes
            noop_times.append(t)
        noop = statistics.median(noop_times)

        make_tree(tmp, 100, start=ns.count, tag_kb=ns.tag_kb)
        t_add, changes = timed(catalog.refresh)
        assert len(changes.added) == 100 and not changes.changed and not changes.removed, changes
        assert len(catalog.items()) == ns.count + 100

        rows = [
            ("cold start (no index)", cold),
            ("warm start (index)", warm),
            ("refresh, no change", noop),
            ("refresh, +100 files", t_add),
        ]
        print(f"files: {ns.count} LoRA safetensors in {FOLDERS} folders "
              f"(index {index.stat().st_size / 1e6:.1f} MB; tree written in {t_make:.1f} s; {os.cpu_count()} CPUs)")
        print(f"{'step':<24}{'seconds':>10}")
        for label, seconds in rows:
            print(f"{label:<24}{seconds:>10.3f}")
        print(f"warm/cold ratio: {warm / cold:.3f}  (warm is {cold / warm:.1f}x faster)")
        goals = warm <= 1.0 and t_add <= 1.0
        print(f"goals (warm <= 1 s, refresh <= 1 s): {'met' if goals else 'NOT met'}")
    finally:
        if ns.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
