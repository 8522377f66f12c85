"""Issue 17, process level: SIGTERM ends a busy server within seconds; kill -9 during writes never leaves a
corrupt settings file, hash index, sidecar or image; memory stays flat over checkpoint switches and under a
bounded load of mixed requests.

The load test runs ``RELIABILITY_LOAD_REQUESTS`` requests (default 240; the issue's 1000 with
``RELIABILITY_LOAD_REQUESTS=1000``), the kill loop ``RELIABILITY_KILL_ROUNDS`` rounds (default 8).
"""
from __future__ import annotations

import base64
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from modules.settings import cmd_args
from tests import tiny_models
from tests.server.test_api_robustness import LiveServer

REPO = Path(__file__).resolve().parents[2]
GEN = {"prompt": "a cat", "steps": 1, "width": 64, "height": 64, "sampler_name": "Euler"}


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- SIGTERM --------------------------------------------------------------------------------------------------

def test_sigterm_stops_a_busy_server_within_seconds(tmp_path):
    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=5), ckpt_dir / "tiny.safetensors", "sd1")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "webui.py"), "--nowebui", "--data-dir", str(tmp_path),
                             "--port", str(port)], cwd=REPO, env={**os.environ, "COMMANDLINE_ARGS": ""},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/sdapi/v1/progress", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        # Two long jobs: one running, one waiting for the queue.
        pool = ThreadPoolExecutor(2)
        for _ in range(2):
            pool.submit(httpx.post, url + "/sdapi/v1/txt2img", json={**GEN, "steps": 500, "n_iter": 20}, timeout=300)
        deadline = time.monotonic() + 120
        while httpx.get(url + "/sdapi/v1/progress", timeout=5).json()["state"]["sampling_step"] < 1:
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)
        t = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert time.perf_counter() - t < 15
        pool.shutdown(wait=False, cancel_futures=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---- kill -9 during writes ---------------------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import json, random, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from PIL import Image
    from modules.core import fileio, image_files
    from modules.settings.options import Options
    from modules.models.hashes import HashCache

    root = Path(sys.argv[1])
    opts = Options(root / "config.json")
    cache = HashCache(root / "cache.json")
    rnd = random.Random()
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        opts.set("jpeg_quality", 1 + i % 100)
        opts.set("samples_filename_pattern", "x" * (i % 150))
        opts.save()
        fileio.atomic_write_json(root / "Lora" / "net.json", {"activation text": "a" * (i % 5000), "n": i}, indent=4)
        image_files.save_image(Image.effect_noise((64 + i % 64, 64), 50).convert("RGB"), root / "images",
                               seed=i, infotext="steps: %d" % i)
        fileio.atomic_write_json(root / "cache.json", {"version": 1, "hashes": {str(k): "%064x" % k for k in range(i % 300)}})
""")


def _check_files(root: Path) -> int:
    json.loads((root / "config.json").read_text(encoding="utf-8"))
    json.loads((root / "Lora" / "net.json").read_text(encoding="utf-8"))
    json.loads((root / "cache.json").read_text(encoding="utf-8"))
    images = [p for p in (root / "images").iterdir() if not p.name.startswith(".")]
    for path in images:
        with Image.open(path) as image:
            image.load()
    return len(images)


def test_kill_9_during_writes_leaves_no_corrupt_file(tmp_path):
    rounds = int(os.environ.get("RELIABILITY_KILL_ROUNDS", "8"))
    (tmp_path / "Lora").mkdir()
    (tmp_path / "images").mkdir()
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rnd = random.Random(17)
    seen = 0
    for _ in range(rounds):
        proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(REPO)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rnd.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        seen = _check_files(tmp_path)
    assert seen > rounds  # images were being written when the process was killed


# ---- memory -----------------------------------------------------------------------------------------------------

def test_memory_is_flat_over_50_checkpoint_switches(tmp_path):
    import webui

    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "one.safetensors", "sd1")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=2), ckpt_dir / "two.safetensors", "sd1")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(tmp_path), "--nowebui"], environ={}))
    infos = [engine.checkpoints.get_closest("one"), engine.checkpoints.get_closest("two")]
    import gc

    for i in range(4):  # warm-up: caches, allocator pools
        engine.load_checkpoint(infos[i % 2])
    gc.collect()
    start = _rss()
    for i in range(50):
        engine.load_checkpoint(infos[i % 2])
    gc.collect()
    growth = _rss() - start
    assert growth < 40 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 50 switches"


# ---- bounded load ------------------------------------------------------------------------------------------------

def test_bounded_load_of_mixed_requests(tmp_path):
    import webui

    total = int(os.environ.get("RELIABILITY_LOAD_REQUESTS", "240"))
    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=5), ckpt_dir / "tiny.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(tmp_path), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    server = LiveServer(webui.create_app(engine, args))
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    requests = [
        ("post", "/sdapi/v1/txt2img", {**GEN, "seed": 1}, 200),
        ("post", "/sdapi/v1/img2img", {**GEN, "init_images": [png], "denoising_strength": 0.5}, 200),
        ("get", "/sdapi/v1/progress", None, 200),
        ("get", "/sdapi/v1/options", None, 200),
        ("get", "/sdapi/v1/sd-models", None, 200),
        ("post", "/sdapi/v1/png-info", {"image": png}, 200),
        ("post", "/sdapi/v1/extra-single-image", {"image": png, "upscaling_resize": 1.5}, 200),
        ("post", "/sdapi/v1/txt2img", {**GEN, "steps": "NaN"}, 422),
        ("post", "/sdapi/v1/txt2img", {**GEN, "seed": -2}, 422),
        ("post", "/sdapi/v1/options", {"outdir_samples": "/tmp/x"}, 422),
        ("post", "/sdapi/v1/txt2img", {**GEN, "prompt": "(" * 50}, 422),
    ]
    rnd = random.Random(3)
    plan = [rnd.choice(requests) for _ in range(total)]

    def one(item):
        method, path, body, expected = item
        with httpx.Client(base_url=server.url, timeout=300) as c:
            r = c.request(method, path, json=body)
        return r.status_code, expected, (r.json() if expected == 200 and path.endswith("txt2img") else None)

    try:
        with ThreadPoolExecutor(12) as pool:  # warm-up round, then measure
            list(pool.map(one, plan[:24]))
            start = _rss()
            results = list(pool.map(one, plan))
        growth = _rss() - start
    finally:
        server.stop()
    assert len(results) == total
    assert [r for r in results if r[0] >= 500] == []
    assert [(status, expected) for status, expected, _ in results if status != expected] == []
    assert all(len(body["images"]) == 1 for _, _, body in results if body is not None)  # nothing lost
    assert growth < 150 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB"
