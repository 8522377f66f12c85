"""Time to change the active LoRA set on an SD1.5-size model: ours (merge into weights, exact restore) against
diffusers' `set_adapters` + `fuse_lora` on the same files, in the same process.

Three kohya rank-32 LoRAs over the UNet attention layers and the text encoder (the layout most files have) are
written to a temp folder. A "change" is one of: none -> {A, B, C} (apply 3), {A, B, C} -> none (remove 3),
{A, B, C} -> {A, B, C'} (one multiplier changes). The models are random-weight SD1.5 architectures built from the
shipped configs (nothing downloaded).

    .venv/bin/python bench/bench_lora_switch.py [--repeats 3] [--device cpu|cuda] [--rank 32]
On a GPU the weights are fp16 (goal there: <= 100 ms per change; on CPU <= 3 s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def build_sd15(device: str, dtype: torch.dtype):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from modules.models import checkpoint_detect as cd

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{k: v for k, v in cd.shipped_config("sd1", "unet").items() if not k.startswith("_")})
    te = CLIPTextModel(CLIPTextConfig(**{k: v for k, v in cd.shipped_config("sd1", "text_encoder").items() if not k.startswith("_")}))
    return unet.to(device, dtype).eval(), te.to(device, dtype).eval()


def write_loras(unet, te, folder: Path, rank: int) -> list[Path]:
    from tests import network_files

    components = {"unet": unet, "text_encoder": te}
    paths = []
    for i, name in enumerate("abc"):
        sd = network_files.kohya_lora(components, rank=rank, alpha=rank / 2, seed=i, scale=0.01, conv=False)
        # The usual kohya layout: attention blocks and text encoder only.
        sd = {k: v.half() for k, v in sd.items() if "attentions" in k or k.startswith("lora_te")}
        paths.append(network_files.save_safetensors(sd, folder / f"lora_{name}.safetensors"))
    return paths


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rank", type=int, default=32)
    ns = ap.parse_args()
    dtype = torch.float16 if ns.device == "cuda" else torch.float32

    from modules.networks.lora_file import load_lora
    from modules.networks.lora_keys import KeyMapper
    from modules.networks.weight_patcher import Contribution, WeightPatcher

    unet, te = build_sd15(ns.device, dtype)
    folder = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    paths = write_loras(unet, te, folder, ns.rank)
    original = {k: v.clone() for k, v in unet.state_dict().items()}

    # --- ours --------------------------------------------------------------------------------------
    mapper = KeyMapper("sd1", unet, [te])
    t = time.perf_counter()
    networks = [load_lora(p, mapper) for p in paths]
    t_load = time.perf_counter() - t
    patcher = WeightPatcher()

    def wanted(mults):
        out: dict = {}
        for net, m in zip(networks, mults):
            for target, module in net.modules.items():
                out.setdefault(mapper.target_module(target), []).append(Contribution((net.key, target), module, m))
        return out

    ours = {"apply 3": [], "remove 3": [], "change 1 weight": []}
    t_first = timed(lambda: patcher.apply(wanted([1.0, 0.8, 0.6])))  # allocates the copies of the originals
    patcher.apply({})
    for _ in range(ns.repeats):
        ours["apply 3"].append(timed(lambda: patcher.apply(wanted([1.0, 0.8, 0.6]))))
        ours["change 1 weight"].append(timed(lambda: patcher.apply(wanted([1.0, 0.8, 0.5]))))
        ours["remove 3"].append(timed(lambda: patcher.apply({})))
    now = unet.state_dict()
    exact = all(torch.equal(v, now[k]) for k, v in original.items())

    # --- diffusers / PEFT ---------------------------------------------------------------------------
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=None, text_encoder=te, tokenizer=None, unet=unet, scheduler=None, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    t = time.perf_counter()
    for p, name in zip(paths, "abc"):
        pipe.load_lora_weights(str(p), adapter_name=name)
    t_load_ref = time.perf_counter() - t
    ref = {"apply 3": [], "remove 3": [], "change 1 weight": []}

    def ref_apply(weights):
        pipe.set_adapters(["a", "b", "c"], weights)
        pipe.fuse_lora(components=["unet", "text_encoder"], adapter_names=["a", "b", "c"])

    for _ in range(ns.repeats):
        ref["apply 3"].append(timed(lambda: ref_apply([1.0, 0.8, 0.6])))
        ref["change 1 weight"].append(timed(lambda: (pipe.unfuse_lora(components=["unet", "text_encoder"]), ref_apply([1.0, 0.8, 0.5]))))
        ref["remove 3"].append(timed(lambda: pipe.unfuse_lora(components=["unet", "text_encoder"])))

    print(f"SD1.5-size UNet + CLIP-L, {ns.device} {str(dtype).replace('torch.', '')}, 3 LoRAs rank {ns.rank} "
          f"({sum(len(n.modules) for n in networks)} modules), median of {ns.repeats}")
    print(f"load 3 files: ours {t_load:.2f} s, diffusers load_lora_weights {t_load_ref:.2f} s")
    print(f"{'change':<18}{'ours (s)':>10}{'diffusers (s)':>15}{'ratio':>8}")
    for key in ours:
        a, b = statistics.median(ours[key]), statistics.median(ref[key])
        print(f"{key:<18}{a:>10.3f}{b:>15.3f}{a / b:>8.2f}")
    print(f"first apply ever (allocates {patcher.backup_bytes / 2**20:.0f} MiB of original copies): ours {t_first:.3f} s")
    print(f"weights bit-identical to the original after remove: {exact}")


if __name__ == "__main__":
    main()
