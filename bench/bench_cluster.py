"""Throughput of the cluster mode: jobs per second through 1 and through 2 Engine replicas on Ray Serve,
against one ordinary Engine in this process (the independently loaded reference).

    .venv/bin/python bench/bench_cluster.py [--jobs 8] [--steps 20] [--replicas 1,2] [--ckpt PATH] [--device cpu]

Each run submits ``--jobs`` txt2img jobs at once (different seeds, the demo model at 64 px unless --ckpt) to
the front's dispatcher, the way concurrent API callers do, and times until the last one is back; then one job
of n_iter = jobs, which the front splits over the replicas. On a CPU every replica gets
cores / replicas torch threads: on a machine with 2 cores the ratio is bounded by the cores, not by Ray.
Also printed: the cluster's start time and a replica's first model load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "models" / "demo" / "sd-demo-shapes-64.safetensors"


def _request(model: str, seed: int, steps: int, size: int, n_iter: int = 1):
    from modules.core.request import GenerationRequest

    return GenerationRequest(prompt="a red circle on a blue background", seed=seed, steps=steps, width=size, height=size,
                             sampler_name="Euler a", n_iter=n_iter, cfg_scale=5.0,
                             override_settings={"sd_model_checkpoint": model, "samples_save": False, "grid_save": False})


def _concurrent(host, requests) -> float:
    errors: list[BaseException] = []

    def one(req):
        try:
            host.generate(req)
        except BaseException as exc:  # reported after the timing
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(r,)) for r in requests]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(1800)
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--replicas", default="1,2")
    ap.add_argument("--ckpt", default=str(DEMO))
    ap.add_argument("--size", type=int, default=64)
    ns = ap.parse_args()

    import webui
    from modules.scripting.host import ScriptHost
    from modules.settings import cmd_args

    data = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    ckpts = data / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    os.symlink(Path(ns.ckpt).resolve(), ckpts / Path(ns.ckpt).name)
    print(f"cpu cores: {os.cpu_count()}, jobs: {ns.jobs}, steps: {ns.steps}, size: {ns.size}")
    try:
        ref_engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={}))
        model = ref_engine.resolve_checkpoint(Path(ns.ckpt).name).title
        ref = ScriptHost.for_engine(ref_engine)
        ref.generate(_request(model, 0, 2, ns.size))  # load and warm
        seconds = _concurrent(ref, [_request(model, s, ns.steps, ns.size) for s in range(ns.jobs)])
        print(f"one Engine in-process: {ns.jobs / seconds:.3f} jobs/s ({seconds:.1f} s)")
        del ref, ref_engine
        base = None
        for count in [int(x) for x in ns.replicas.split(",")]:
            args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui", "--replicas", str(count)], environ={})
            engine = webui.build_engine(args)
            t0 = time.perf_counter()
            cluster = webui.attach_cluster(engine, args)
            started = time.perf_counter() - t0
            host = ScriptHost.for_engine(engine)
            try:
                t0 = time.perf_counter()
                _concurrent(host, [_request(model, 0, 2, ns.size) for _ in range(count)])  # every replica loads
                load = time.perf_counter() - t0
                seconds = _concurrent(host, [_request(model, s, ns.steps, ns.size) for s in range(ns.jobs)])
                rate = ns.jobs / seconds
                base = base or rate
                t0 = time.perf_counter()
                host.generate(_request(model, 0, ns.steps, ns.size, n_iter=ns.jobs))
                split = time.perf_counter() - t0
                print(f"{count} replica(s): start {started:.1f} s, first load+job {load:.1f} s, "
                      f"{rate:.3f} jobs/s ({seconds:.1f} s; x{rate / base:.2f} of 1 replica); "
                      f"one job n_iter={ns.jobs} split: {split:.1f} s", flush=True)
            finally:
                host.close()
                cluster.shutdown()
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
