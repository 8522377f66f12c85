"""The API on a real uvicorn server (127.0.0.1, free port, background thread): concurrency, malformed input,
interrupt, live preview, task queue, server-stop, and a bounded schemathesis run that must find no 500."""
from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import httpx
import pytest
import requests
from PIL import Image

from modules.settings import cmd_args
from modules.core import infotext
from tests import tiny_models

GEN = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "sampler_name": "Euler"}


class LiveServer:
    """``app`` served by uvicorn on a free 127.0.0.1 port in a daemon thread; ``stop()`` waits for it to exit."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True,
                                       name=f"uvicorn-{self.port}")
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self, timeout: float = 15) -> bool:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
        return not self.thread.is_alive()


def build_api_app(tmp_path_factory: Any, name: str, *extra_flags: str) -> tuple[Any, Any]:
    """(engine, app) over one tiny SD1 checkpoint, through webui.create_app (the real middleware stack)."""
    import webui

    data = tmp_path_factory.mktemp(name)
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=5), ckpt_dir / "tiny-live.safetensors", "sd1")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui", *extra_flags], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    return engine, webui.create_app(engine, args)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    engine, app = build_api_app(tmp_path_factory, "api-live", "--api-server-stop")
    server = LiveServer(app)
    yield {"engine": engine, "app": app, "url": server.url}
    server.stop()


@pytest.fixture
def http(live):
    with httpx.Client(base_url=live["url"], timeout=120) as c:
        yield c


def _png_b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _wait_for(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_twenty_concurrent_txt2img(live):
    seeds = [1000 + 37 * i for i in range(20)]

    def one(seed: int) -> tuple[int, dict]:
        with httpx.Client(base_url=live["url"], timeout=300) as c:
            r = c.post("/sdapi/v1/txt2img", json={**GEN, "seed": seed})
            return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, seeds))
    pictures = set()
    for seed, (status, body) in zip(seeds, results):
        assert status == 200, body
        info = json.loads(body["info"])
        assert info["all_seeds"] == [seed]
        image = Image.open(io.BytesIO(base64.b64decode(body["images"][0])))
        assert infotext.parse_generation_parameters(image.info["parameters"])["Seed"] == str(seed)
        pictures.add(image.tobytes())
    assert len(pictures) == 20  # every seed its own picture: no request got another's result


def _truncated_png() -> str:
    raw = base64.b64decode(_png_b64(Image.new("RGB", (64, 64), (1, 2, 3)).effect_spread(3)))
    return base64.b64encode(raw[: len(raw) // 2]).decode()


VALID_PNG = _png_b64(Image.new("RGB", (64, 64), (120, 30, 200)))

MALFORMED: list[tuple[str, Any, str]] = [
    ("txt2img", {"steps": "many"}, "steps"),
    ("txt2img", {"steps": -3}, "steps"),
    ("txt2img", {"steps": 10**9}, "steps"),
    ("txt2img", {"width": 100}, "width"),
    ("txt2img", {"width": 65}, "width"),
    ("txt2img", {"height": 1 << 16}, "height"),
    ("txt2img", {"batch_size": 0}, "batch_size"),
    ("txt2img", {"cfg_scale": "high"}, "cfg_scale"),
    ("txt2img", {"seed": 2**80}, "seed"),
    ("txt2img", {"sampler_name": "Fancy Sampler 9000"}, "sampler_name"),
    ("txt2img", {"scheduler": "Nope"}, "scheduler"),
    ("txt2img", {"script_name": "No Such Script"}, "Script 'No Such Script' not found"),
    ("txt2img", {"alwayson_scripts": {"controlnet": {"args": []}}}, "controlnet"),
    ("txt2img", {"override_settings": {"no_such_setting": 1}}, "no_such_setting"),
    ("txt2img", {"override_settings": "x"}, "override_settings"),
    ("txt2img", {"styles": "Painted"}, "styles"),
    ("txt2img", {"prompt": ["a", "b"]}, "prompt"),
    ("txt2img", {"enable_hr": True, "hr_upscaler": "Nope"}, "hr_upscaler"),
    ("txt2img", {"denoising_strength": 7}, "denoising_strength"),
    ("txt2img", [1, 2, 3], "body"),
    ("img2img", {"init_images": ["%%% not base64 %%%"]}, "init_images[0]"),
    ("img2img", {"init_images": [_truncated_png()]}, "init_images[0]"),
    ("img2img", {"init_images": [12345]}, "init_images"),
    ("img2img", {"init_images": []}, "Init image not found"),
    ("img2img", {"init_images": [VALID_PNG], "mask": "data:image/png;base64,AAAA"}, "mask"),
    ("img2img", {"init_images": [VALID_PNG], "resize_mode": 9}, "resize_mode"),
    ("img2img", {"init_images": [VALID_PNG], "inpainting_fill": 7}, "inpainting_fill"),
    ("extra-single-image", {"image": "garbage"}, "image"),
    ("extra-single-image", {"image": VALID_PNG, "upscaler_1": "Nope"}, "upscaler_1"),
    ("extra-single-image", {"image": VALID_PNG, "upscaling_resize": 100}, "upscaling_resize"),
    ("extra-batch-images", {"imageList": [{"data": _truncated_png(), "name": "t"}]}, "imageList[0].data"),
    ("png-info", {"image": "garbage"}, "image"),
    ("png-info", {"image": _truncated_png()}, "image"),
    ("options", {"CLIP_stop_at_last_layers": 99}, "CLIP_stop_at_last_layers"),
    ("options", {"sd_model_checkpoint": "missing-model"}, "missing-model"),
]


def test_malformed_payloads_are_422_and_server_keeps_serving(http):
    for endpoint, extra, needle in MALFORMED:
        payload = {**GEN, **extra} if isinstance(extra, dict) and endpoint in ("txt2img", "img2img") else extra
        r = http.post(f"/sdapi/v1/{endpoint}", json=payload)
        assert r.status_code == 422, (endpoint, extra, r.status_code, r.text)
        body = r.json()
        assert set(body) >= {"error", "detail", "body", "errors"}, body
        assert needle in json.dumps(body), (needle, body)
    r = http.post("/sdapi/v1/txt2img", content=b'{"prompt": "broken', headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = http.post("/sdapi/v1/txt2img", json={**GEN, "seed": 5})
    assert r.status_code == 200 and json.loads(r.json()["info"])["all_seeds"] == [5]


def _long_request(live: dict, payload: dict, out: dict) -> threading.Thread:
    def run() -> None:
        with httpx.Client(base_url=live["url"], timeout=300) as c:
            r = c.post("/sdapi/v1/txt2img", json=payload)
            out["status"], out["body"] = r.status_code, r.json()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_interrupt_returns_images_finished_so_far(live, http):
    out: dict = {}
    thread = _long_request(live, {**GEN, "steps": 8, "n_iter": 400, "seed": 77}, out)
    state = live["engine"].state
    _wait_for(lambda: state.job_no >= 2, what="two finished images")
    assert http.post("/sdapi/v1/interrupt").json() == {}
    thread.join(60)
    assert out["status"] == 200, out
    images = out["body"]["images"]
    info = json.loads(out["body"]["info"])
    assert 2 <= len(images) < 400
    assert info["all_seeds"] == [77 + i for i in range(len(images))]


def test_live_preview_and_skip_current_image(live, http):
    out: dict = {}
    payload = {**GEN, "steps": 6, "n_iter": 400, "override_settings": {"show_progress_every_n_steps": 1}}
    thread = _long_request(live, payload, out)
    state = live["engine"].state
    _wait_for(lambda: state.job_count > 0 and state.current_preview is not None, what="a live preview")
    body = http.get("/sdapi/v1/progress").json()
    assert 0 < body["progress"] <= 1 and body["state"]["job"] == "txt2img" and body["state"]["job_count"] == 400
    preview = Image.open(io.BytesIO(base64.b64decode(body["current_image"])))
    assert preview.size == (64, 64)
    assert http.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()["current_image"] is None
    http.post("/sdapi/v1/interrupt")
    thread.join(60)
    assert out["status"] == 200


def test_task_queue_progress(live, http):
    state = live["engine"].state
    first: dict = {}
    second: dict = {}
    t1 = _long_request(live, {**GEN, "steps": 6, "n_iter": 400, "force_task_id": "task(txt2img-FIRST01)",
                              "override_settings": {"show_progress_every_n_steps": 1}}, first)
    _wait_for(lambda: state.id_task == "task(txt2img-FIRST01)" and state.current_preview is not None, what="first task")
    t2 = _long_request(live, {**GEN, "steps": 6, "n_iter": 400, "force_task_id": "task(txt2img-SECOND2)"}, second)
    _wait_for(lambda: http.get("/internal/pending-tasks").json()["size"] == 1, what="second task queued")
    assert http.get("/internal/pending-tasks").json() == {"size": 1, "tasks": ["task(txt2img-SECOND2)"]}
    running = http.post("/internal/progress", json={"id_task": "task(txt2img-FIRST01)", "id_live_preview": -1}).json()
    assert running["active"] and not running["queued"] and 0 <= running["progress"] <= 1
    assert running["live_preview"].startswith("data:image/png;base64,") and running["id_live_preview"] >= 0
    again = http.post("/internal/progress", json={"id_task": "task(txt2img-FIRST01)",
                                                  "id_live_preview": running["id_live_preview"]}).json()
    assert again["live_preview"] is None or again["id_live_preview"] != running["id_live_preview"]
    waiting = http.post("/internal/progress", json={"id_task": "task(txt2img-SECOND2)"}).json()
    assert waiting["queued"] and not waiting["active"] and waiting["textinfo"] == "In queue: 1/1"
    http.post("/sdapi/v1/interrupt")
    _wait_for(lambda: state.id_task == "task(txt2img-SECOND2)", what="second task running")
    http.post("/sdapi/v1/interrupt")
    t1.join(60)
    t2.join(60)
    assert first["status"] == 200 and second["status"] == 200
    done = http.post("/internal/progress", json={"id_task": "task(txt2img-FIRST01)"}).json()
    assert done["completed"] and not done["active"]


def test_schemathesis_finds_no_server_error(live):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{live['url']}/openapi.json")
    posts = {"/sdapi/v1/png-info", "/sdapi/v1/options"}
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if op.method.upper() == "GET" or op.path in posts]
    assert len(operations) >= 20
    failures: list[str] = []
    session = requests.Session()
    for op in operations:
        # GETs take (almost) no input; the two POSTs get more cases.
        @settings(max_examples=40 if op.method.upper() == "POST" else 5, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=live["url"], session=session, timeout=60)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r} {case.query!r} -> "
                                f"{response.status_code} {response.text[:300]}")

        check()
    assert not failures, "\n".join(failures[:10])


def test_server_stop_makes_uvicorn_exit(live):
    import webui

    engine = live["engine"]
    app = webui.create_app(engine, engine.args)  # a second server over the same engine
    server = LiveServer(app)
    app.state.server_control.attach(server.server)  # what webui.main does with its server
    r = httpx.post(f"{server.url}/sdapi/v1/server-stop", timeout=30)
    assert r.status_code == 200 and r.text == "Stopping."
    server.thread.join(20)
    assert not server.thread.is_alive()
    server.sock.close()
