"""Adapter catalog scan speed: cold start, warm start (persistent index) and refresh.

Creates ``--count`` tiny but valid LoRA safetensors files (a few tensors and some kohya-style
metadata) in ~50 sub-folders of a temporary folder, some with ``.json`` sidecars and preview PNGs,
then times:

- cold: a new NetworkCatalog with no index, until its list is ready (reads every header, writes the index);
- warm: a new NetworkCatalog with the index present, until its list is ready (no file contents read);
- refresh +100: refresh() of the warm catalog after 100 new files were added;
- refresh (no change): refresh() when nothing changed.

    .venv/bin/python bench/bench_network_scan.py [--count 10000] [--repeats 3] [--tag-kb 0]
        [--cover-kb 0 --cover-every 10] [--keep]

Goals: warm <= 1 s and refresh <= 1 s for 10,000 files on a 2-core machine. The "cold" number
is taken right after writing the files, so their pages are still cached: a real first start from
disk is slower. ``--tag-kb 20`` gives files with real-sized kohya metadata: the ~55 short training
keys a real kohya LoRA has, plus ``ss_tag_frequency`` padded to about 20 KB; ``--cover-kb 200``
adds a base64 ``ssmd_cover_images`` of about 200 KB to every ``--cover-every``-th file. The index
keeps only short metadata values, so its size (printed) should not grow with the big ones.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
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


# The short training keys of a real kohya-ss LoRA (values of a real SD1.5 LoKr's metadata).
KOHYA_KEYS = {
    "ss_batch_size_per_device": "4", "ss_bucket_no_upscale": "True", "ss_cache_latents": "False",
    "ss_caption_dropout_every_n_epochs": "0", "ss_caption_dropout_rate": "0.0", "ss_caption_tag_dropout_rate": "0.0",
    "ss_clip_skip": "None", "ss_color_aug": "False", "ss_enable_bucket": "True", "ss_epoch": "10",
    "ss_face_crop_aug_range": "None", "ss_flip_aug": "False", "ss_full_fp16": "False",
    "ss_gradient_accumulation_steps": "1", "ss_gradient_checkpointing": "True", "ss_keep_tokens": "0",
    "ss_learning_rate": "0.0003", "ss_lowram": "False", "ss_lr_scheduler": "cosine_with_restarts",
    "ss_lr_warmup_steps": "301", "ss_max_bucket_reso": "1024", "ss_max_grad_norm": "1.0",
    "ss_max_token_length": "225", "ss_max_train_steps": "3010", "ss_min_bucket_reso": "256",
    "ss_min_snr_gamma": "None", "ss_mixed_precision": "fp16", "ss_network_alpha": "4.0",
    "ss_network_args": '{"conv_rank": "4", "conv_alpha": "4", "algo": "lokr"}',
    "ss_new_sd_model_hash": "7548b773903c5a5effd63afa2a066e472d5c94aed77a107f16dae20f609e240b",
    "ss_noise_offset": "0.03", "ss_num_batches_per_epoch": "301", "ss_num_epochs": "10", "ss_num_reg_images": "0",
    "ss_num_train_images": "1204", "ss_optimizer": "lion_pytorch.lion_pytorch.Lion(weight_decay=0.1)",
    "ss_prior_loss_weight": "1.0", "ss_random_crop": "True", "ss_reg_dataset_dirs": "{}",
    "ss_resolution": "(768, 768)", "ss_sd_model_hash": "5386e8fb", "ss_sd_model_name": "animefull-final-pruned.safetensors",
    "ss_sd_scripts_commit_hash": "8eb60baf3a920fb83a862d95fbfc73d1d19b7b31", "ss_seed": "42",
    "ss_session_id": "2097167670", "ss_shuffle_caption": "True", "ss_text_encoder_lr": "0.00015",
    "ss_total_batch_size": "4", "ss_training_comment": "trigger word is smart falcon",
    "ss_training_finished_at": "1680721307.2415755", "ss_training_started_at": "1680716500.7709305",
    "ss_unet_lr": "0.0003", "sshs_legacy_hash": "e3b0c442",
}


def safetensors_bytes(i: int, tag_kb: int = 0, cover_kb: int = 0) -> bytes:
    """A tiny kohya-style LoRA: two F32 tensors of an SD1 text-encoder q_proj plus metadata.

    ``tag_kb`` > 0 adds the short kohya training keys and pads ``ss_tag_frequency`` to about that
    many KB, with a matching ``ss_dataset_dirs`` and ``ss_bucket_info`` (real kohya files carry
    5-50 KB); ``cover_kb`` adds a base64 ``ssmd_cover_images`` of about that many KB.
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
    meta = header["__metadata__"]
    if tag_kb:
        meta.update(KOHYA_KEYS)
        meta["sshs_model_hash"] = f"{i:064x}"
        meta["ss_dataset_dirs"] = json.dumps({f"{n}_img{n}": {"n_repeats": n, "img_count": 40 + n} for n in range(8)})
        meta["ss_bucket_info"] = json.dumps(
            {"buckets": {str(n): {"resolution": [448 + 64 * n, 768], "count": 4 + n} for n in range(24)},
             "mean_img_ar_error": 0.0125})
    if cover_kb:
        # What kohya's --metadata_cover_image writes: a JSON list of data URLs (incompressible bytes).
        blob = base64.b64encode(random.Random(i).randbytes(cover_kb * 1024 * 3 // 4)).decode()
        meta["ssmd_cover_images"] = json.dumps([f"data:image/jpeg;base64,{blob}"])
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


def make_tree(root: Path, count: int, start: int = 0, tag_kb: int = 0, cover_kb: int = 0,
              cover_every: int = 10) -> list[Path]:
    made = []
    for i in range(start, start + count):
        folder = root / "Lora" / f"set{i % FOLDERS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"lora_{i:05d}.safetensors"
        path.write_bytes(safetensors_bytes(i, tag_kb, cover_kb if i % cover_every == 0 else 0))
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
                    help="real kohya metadata: short training keys plus ss_tag_frequency of about this many KB "
                         "(real files: 5-50)")
    ap.add_argument("--cover-kb", type=int, default=0,
                    help="add an ssmd_cover_images of about this many KB (base64 image) to some files")
    ap.add_argument("--cover-every", type=int, default=10, help="which files get the cover image: every N-th")
    ns = ap.parse_args()
    tree = {"tag_kb": ns.tag_kb, "cover_kb": ns.cover_kb, "cover_every": max(1, ns.cover_every)}

    tmp = Path(tempfile.mkdtemp(prefix="bench-netscan-"))
    try:
        t_make, made = timed(lambda: make_tree(tmp, ns.count, **tree))
        tree_mb = sum(p.stat().st_size for p in made) / 1e6
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

        make_tree(tmp, 100, start=ns.count, **tree)
        t_add, changes = timed(catalog.refresh)
        assert len(changes.added) == 100 and not changes.changed and not changes.removed, changes
        assert len(catalog.items()) == ns.count + 100

        rows = [
            ("cold start (no index)", cold),
            ("warm start (index)", warm),
            ("refresh, no change", noop),
            ("refresh, +100 files", t_add),
        ]
        print(f"files: {ns.count} LoRA safetensors in {FOLDERS} folders, {tree_mb:.0f} MB "
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
