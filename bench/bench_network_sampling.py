"""Sampling cost of active adapters on an SD1.5-size UNet: 3 merged LoRAs and one hypernetwork (layers for widths
320/640/768/1280) against no adapter, timed interleaved in one process.

Merged LoRAs leave plain weights behind, so their ratio should be ~1.0 (goal >= 0.98). A hypernetwork runs small
MLPs on every attention's key/value input. Two files are timed: A1111's default (activation ``linear``), which the
app folds into self-attention's projections, and a ``relu`` one, whose self-attention MLPs must run at every step.

    .venv/bin/python bench/bench_network_sampling.py [--size 256] [--repeats 5] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.bench_lora_switch import build_sd15, write_loras  # noqa: E402


def hypernetwork_file(path: Path, widths=(320, 640, 768, 1280), activation: str = "linear") -> Path:
    """A1111 layout, [1, 2, 1], the training UI's default widths (SD1.5's) and activation (``linear``)."""
    gen = torch.Generator().manual_seed(7)

    second = 1 if activation == "linear" else 2  # an activation takes a slot in A1111's Sequential

    def mlp(dim):
        return {"linear.0.weight": torch.randn(2 * dim, dim, generator=gen) * 0.01, "linear.0.bias": torch.zeros(2 * dim),
                f"linear.{second}.weight": torch.randn(dim, 2 * dim, generator=gen) * 0.01,
                f"linear.{second}.bias": torch.zeros(dim)}

    data = {w: [mlp(w), mlp(w)] for w in widths}
    data.update(layer_structure=[1, 2, 1], activation_func=activation, is_layer_norm=False, activate_output=False)
    torch.save(data, path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--widths", default="320,640,768,1280",
                    help="the hypernetwork's layer widths: A1111 creates all four (self-attention too, which runs on "
                         "every step); 768 alone is a cross-attention-only file, whose k/v the cache computes once")
    ap.add_argument("--cpu-time", action="store_true",
                    help="CPU: time with this process's CPU seconds (steadier than wall time on a shared machine; use "
                         "with OMP_NUM_THREADS=1 so that idle-spinning threads are not counted)")
    ns = ap.parse_args()
    if ns.cpu_time:
        import time

        def timed(fn) -> float:  # noqa: F811 - the CPU-seconds variant of bench_lora_switch.timed
            start = time.process_time()
            fn()
            return time.process_time() - start
    else:
        from bench.bench_lora_switch import timed
    dtype = torch.float16 if ns.device == "cuda" else torch.float32

    from modules.networks.hypernet_attention import HypernetworkPatch
    from modules.networks.hypernetwork import Hypernetwork
    from modules.networks.lora_file import load_lora
    from modules.networks.lora_keys import KeyMapper
    from modules.networks.weight_patcher import Contribution, WeightPatcher

    unet, te = build_sd15(ns.device, dtype)
    folder = Path(tempfile.mkdtemp(prefix="bench-netsample-"))
    mapper = KeyMapper("sd1", unet, [te])
    networks = [load_lora(p, mapper) for p in write_loras(unet, te, folder, 32)]
    widths = tuple(int(w) for w in ns.widths.split(","))
    hypernets = {kind: Hypernetwork.load(hypernetwork_file(folder / f"hn-{kind}.pt", widths, kind))
                 for kind in ("linear", "relu")}
    patcher, hyper = WeightPatcher(), HypernetworkPatch(unet)

    lat = ns.size // 8
    x = torch.randn(2, 4, lat, lat, device=ns.device, dtype=dtype)
    ctx = torch.randn(2, 77, 768, device=ns.device, dtype=dtype)
    t = torch.tensor([500, 500], device=ns.device)

    def step():
        with torch.no_grad():
            unet(x, t, encoder_hidden_states=ctx)

    def configure(loras: bool, hn: str | None):
        wanted: dict = {}
        if loras:
            for net in networks:
                for target, module in net.modules.items():
                    wanted.setdefault(mapper.target_module(target), []).append(Contribution((net.key, target), module, 0.8))
        patcher.apply(wanted)
        hyper.set([(hypernets[hn], 1.0)] if hn else [])

    from modules.networks.hypernet_attention import ContextCache

    cached_get = ContextCache.get

    def uncached_step():
        # What the text context's transforms cost when computed in every layer at every step (A1111's way).
        ContextCache.get = lambda self, context: None
        try:
            step()
        finally:
            ContextCache.get = cached_get

    cases = {"none": (False, None), "3 LoRAs": (True, None), "hypernetwork linear": (False, "linear"),
             "hypernetwork relu": (False, "relu"), "hypernetwork relu, no cache": (False, "relu"),
             "3 LoRAs + hypernet linear": (True, "linear")}
    runs = {name: uncached_step if "no cache" in name else step for name in cases}
    # A generation's first step after an activation also pays what is set up once per activation (the linear
    # hypernetwork's folds, the text context's transforms); the steps after it show the per-step cost.
    firsts: dict[str, list[float]] = {k: [] for k in cases}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for name, (loras, hn) in cases.items():  # warm-up
        configure(loras, hn)
        runs[name]()
    for _ in range(ns.repeats):
        for name, (loras, hn) in cases.items():
            configure(loras, hn)
            firsts[name].append(timed(runs[name]))
            times[name].append(timed(runs[name]))
    configure(False, None)
    base = statistics.median(times["none"])
    print(f"SD1.5-size UNet forward, batch 2 (cond+uncond), {ns.size}x{ns.size}, {ns.device} "
          f"{str(dtype).replace('torch.', '')}, median of {ns.repeats}, {'CPU seconds' if ns.cpu_time else 'wall time'}")
    print(f"{'active':<28}{'s/step':>9}{'speed vs none':>15}{'first step':>12}")
    for name in cases:
        m = statistics.median(times[name])
        print(f"{name:<28}{m:>9.3f}{base / m:>15.3f}x{statistics.median(firsts[name]):>11.3f}s")
    for name in ("hypernetwork linear", "hypernetwork relu", "hypernetwork relu, no cache"):
        hn = statistics.median(times[name])
        print(f"{name} overhead: {hn / base - 1:+.1%} time per step (ratio {hn / base:.3f})")
    once = statistics.median(firsts["hypernetwork linear"]) - statistics.median(times["hypernetwork linear"])
    print(f"hypernetwork linear, once per activation (folding): {once:+.3f} s")

if __name__ == "__main__":
    main()
