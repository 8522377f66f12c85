"""The comparison a user makes: this app's ``/sdapi/v1/txt2img`` against plain diffusers on the same file.

A random-weight checkpoint with the full SD1.5 layout (single file, ldm key names; ``bench/sd_checkpoints.py``
writes it once to a cache folder) is loaded twice, independently:

* the reference: ``StableDiffusionPipeline.from_single_file`` in this process (diffusers' own loader, offline,
  the shipped configs), Euler;
* the app: ``webui.py --nowebui --ckpt FILE`` started as its own process, as a user runs it, bound to 127.0.0.1;
  each run is one HTTP POST of ``/sdapi/v1/txt2img`` (base64 PNG in the answer, as a client gets it).

Both make the same picture request (128 px, 8 steps, Euler, CFG 7, batch 1, same prompt and seed), alternated
in one run so that the load of a shared machine hits both alike; the per-run times and the median ratio are
printed. Only one of the two computes at a time; the other waits idle.

    .venv/bin/python bench/bench_api_vs_diffusers.py [--repeats 5] [--size 128] [--steps 8] [--threads N]
        [--app-flag=--compile ... [--with-plain-app]] [--family sd1|sdxl]

``--with-plain-app`` starts a second app without the flags and puts it in the same rotation, so that a flag's
effect is measured against both references in one run (the machine's speed drifts between runs).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.sd_checkpoints import REPO, checkpoint, reference_pipeline  # noqa: E402

PROMPT, NEGATIVE = "a red circle on a blue background", "blurry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """``webui.py --nowebui`` in a child process on 127.0.0.1; stopped (by its own pid) on exit."""

    def __init__(self, ckpt: Path, flags: list[str], threads: int | None) -> None:
        self.port = _free_port()
        self.data = Path(tempfile.mkdtemp(prefix="bench-api-"))
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, str(REPO / "webui.py"), "--nowebui", "--port", str(self.port), "--data-dir", str(self.data),
               "--ckpt", str(ckpt), "--use-cpu", "all", *flags]
        self.log = open(self.data / "server.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the app exited; see {self.data / 'server.log'}")
            try:
                with urllib.request.urlopen(self.url("/sdapi/v1/options"), timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"the app did not answer in {timeout:.0f} s; see {self.data / 'server.log'}")

    def txt2img(self, payload: dict) -> dict:
        body = json.dumps(payload).encode()
        req = urllib.request.Request(self.url("/sdapi/v1/txt2img"), data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=1800) as r:
            return json.loads(r.read())

    def cpu_seconds(self) -> float:
        """User + system CPU time of the app process so far (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="sd1", choices=["sd1", "sdxl"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's own)")
    ap.add_argument("--app-flag", action="append", default=[], help="extra webui.py flag, e.g. --app-flag=--compile")
    ap.add_argument("--with-plain-app", action="store_true",
                    help="with --app-flag: also time the app without those flags, in the same rotation")
    ns = ap.parse_args()
    if ns.threads:
        torch.set_num_threads(ns.threads)

    ckpt = checkpoint(ns.family)
    flagged = " ".join(ns.app_flag)
    apps = {f"app {flagged}".strip(): AppServer(ckpt, ns.app_flag, ns.threads)}
    if ns.with_plain_app and ns.app_flag:
        apps["app"] = AppServer(ckpt, [], ns.threads)
    try:
        pipe = reference_pipeline(ckpt, ns.family)
        for app in apps.values():
            app.wait_ready()
        payload = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": ns.steps, "width": ns.size, "height": ns.size,
                   "sampler_name": "Euler", "cfg_scale": 7, "seed": 1, "batch_size": 1, "n_iter": 1}

        def request(app: AppServer):
            def run() -> None:
                out = app.txt2img(payload)
                assert out["images"], "the app returned no image"
            return run

        def reference() -> None:
            pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=ns.steps, guidance_scale=7.0, width=ns.size,
                 height=ns.size, generator=torch.Generator().manual_seed(1), output_type="pil")

        # Wall time is what a user sees; CPU seconds (the working process's, all threads) are printed beside it
        # because other jobs on a shared machine stretch wall time far more than the work done.
        contestants = {"diffusers": (reference, lambda: time.process_time())}
        contestants.update({name: (request(app), app.cpu_seconds) for name, app in apps.items()})
        first = {}
        for name, app in apps.items():  # loads the model (and compiles)
            start = time.perf_counter(); contestants[name][0](); first[name] = time.perf_counter() - start
        reference()
        wall: dict[str, list[float]] = {name: [] for name in contestants}
        cpu: dict[str, list[float]] = {name: [] for name in contestants}
        names = list(contestants)
        for i in range(ns.repeats):
            order = names[i % len(names):] + names[:i % len(names)]  # each starts a round in turn
            for name in order:
                fn, clock = contestants[name]
                c0 = clock(); start = time.perf_counter(); fn()
                wall[name].append(time.perf_counter() - start); cpu[name].append(clock() - c0)
            print(f"run {i + 1}: " + "  ".join(f"{n} {wall[n][-1]:.3f} s (cpu {cpu[n][-1]:.2f} s)" for n in names),
                  flush=True)
    finally:
        for app in apps.values():
            app.stop()
    print(f"checkpoint {ckpt.name}; {ns.size} px, {ns.steps} steps, Euler, CFG 7, batch 1; torch threads "
          f"{torch.get_num_threads()}; first request: " + ", ".join(f"{n} {t:.1f} s" for n, t in first.items()))
    mr, cr = statistics.median(wall["diffusers"]), statistics.median(cpu["diffusers"])
    print(f"diffusers from_single_file: median {mr:.3f} s (cpu {cr:.2f} s)")
    for name in apps:
        mo, co = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"{name} /sdapi/v1/txt2img: median {mo:.3f} s (cpu {co:.2f} s)   ratio {name}/diffusers = {mo / mr:.3f} "
              f"(cpu seconds {co / cr:.3f})")

if __name__ == "__main__":
    main()
