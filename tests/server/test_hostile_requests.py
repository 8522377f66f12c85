"""Issue 17: no request can hang, exhaust, crash or escape the server.

One real uvicorn server on 127.0.0.1 (tiny SD1 checkpoints, the API only) answers hostile requests: each is a
4xx naming the field and the bound (or a 507 for a full disk), never a 500, and ``/progress`` keeps answering
in well under a second while the server works on them.
"""
from __future__ import annotations

import base64
import errno
import io
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from modules.core import request_bounds
from modules.settings import cmd_args
from tests import tiny_models
from tests.server.test_api_robustness import LiveServer

GEN = {"prompt": "a cat", "steps": 1, "width": 64, "height": 64, "sampler_name": "Euler", "seed": 1}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("hostile")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=5), ckpt_dir / "a-tiny.safetensors", "sd1")
    (ckpt_dir / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    server = LiveServer(webui.create_app(engine, args))
    yield {"engine": engine, "url": server.url, "data": data}
    server.stop()


@pytest.fixture
def http(live):
    with httpx.Client(base_url=live["url"], timeout=120) as c:
        yield c


def _error(r: httpx.Response, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()  # valid JSON in A1111's error shape, whatever was sent
    assert {"error", "detail", "body", "errors"} <= set(body)
    text = json.dumps(body)
    for needle in needles:
        assert needle in text, (needle, body)
    return body


def _png_b64(image: Image.Image, **text: str) -> str:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return base64.b64encode(buf.getvalue()).decode()


class ProgressWatch:
    """Polls /progress from a thread while the block runs; ``slowest`` is the longest answer in seconds."""

    def __init__(self, url: str) -> None:
        self.url, self.slowest, self.count, self._stop = url, 0.0, 0, threading.Event()
        self.failures: list[str] = []

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.is_set():
                t = time.perf_counter()
                r = c.get("/sdapi/v1/progress", params={"skip_current_image": True})
                self.slowest = max(self.slowest, time.perf_counter() - t)
                self.count += 1
                if r.status_code != 200:
                    self.failures.append(r.text)
                time.sleep(0.02)

    def __enter__(self) -> "ProgressWatch":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join(30)


# ---- ReDoS and linear parsing -------------------------------------------------------------------------------

def test_huge_infotext_is_parsed_quickly_and_progress_keeps_answering(live, http):
    image = Image.new("RGB", (8, 8))
    hostile = [("a" * 60_000), ("word " * 400_000), "x" + " " * 2_000_000]
    with ProgressWatch(live["url"]) as watch:
        for text in hostile:
            t = time.perf_counter()
            r = http.post("/sdapi/v1/png-info", json={"image": _png_b64(image, parameters=text)})
            assert r.status_code == 200 and time.perf_counter() - t < 10
        t = time.perf_counter()
        r = http.post("/sdapi/v1/txt2img", json={**GEN, "infotext": "a" * 60_000 + "\nSteps: 1, Seed: 3"})
        assert r.status_code == 200 and time.perf_counter() - t < 30
    assert watch.count > 3 and not watch.failures and watch.slowest < 1.0


def test_png_info_of_deeply_nested_prompts_is_quick(http):
    image = Image.new("RGB", (8, 8))
    for prompt in ("(a" * 30_000, "(]" * 30_000, "<a:" * 20_000, "((a:1.1)" * 7_000):
        t = time.perf_counter()
        r = http.post("/sdapi/v1/png-info", json={"image": _png_b64(image, parameters=prompt + "\nSteps: 1, Seed: 1, Size: 8x8")})
        assert r.status_code == 200 and time.perf_counter() - t < 5, prompt[:10]
        assert r.json()["parameters"].get("Emphasis") == ("Original" if "(" in prompt else None)


def test_prompts_within_bounds_are_parsed_in_linear_time():
    from modules.core import prompt_parser

    for prompt in ("((a:1.1)" * 2000, "[a:b:0.5]" * 2000, "[a|b] " * 3000, "(" * 30 + "x" + ")" * 30 + "y" * 19000,
                   "a AND " * 32, "a BREAK " * 64):
        t = time.perf_counter()
        prompt_parser.get_learned_conditioning_prompt_schedules([prompt], 20)
        prompt_parser.get_multicond_prompt_list([prompt])
        prompt_parser.parse_prompt_attention(prompt)
        assert time.perf_counter() - t < 2, prompt[:20]


# ---- bounds ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,needles", [
    ("prompt", "a" * 20_001, ["prompt", "20000", "--max-prompt-length"]),
    ("negative_prompt", "((a" * 40, ["negative_prompt", "nests brackets", "32"]),
    ("prompt", "a AND " * 40, ["prompt", "AND", "32"]),
    ("prompt", "a BREAK " * 70, ["prompt", "BREAK", "64"]),
    ("prompt", "<lora:x:1> " * 33, ["prompt", "network tags", "32"]),
    ("prompt", "<lora:x:NaN>", ["prompt", "multiplier", "NaN"]),
    ("prompt", "<lora:x:1e308>", ["prompt", "multiplier", "1e308"]),
    ("prompt", "<lora:x:1:inf>", ["prompt", "multiplier"]),
    ("hr_prompt", "[a" * 40, ["hr_prompt", "nests"]),
    ("prompt", "(]" * 40, ["prompt", "nests brackets 40 deep"]),
    ("prompt", "1" * 6000, ["prompt", "chunks of 75 tokens", "--max-prompt-chunks"]),
    ("negative_prompt", "猫" * 2000, ["negative_prompt", "chunks of 75 tokens", "64"]),
])
def test_prompt_bounds_are_422_naming_field_and_bound(http, field, value, needles):
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, field: value}), 422, *needles)


def test_bounds_are_launch_flags():
    args = cmd_args.parse_args(["--max-prompt-length", "100", "--max-image-pixels", "4096"], environ={})
    saved = request_bounds.current()
    try:
        bounds = request_bounds.configure(args)
        assert bounds.max_prompt_length == 100 and bounds.max_image_pixels == 4096
        with pytest.raises(request_bounds.BoundError, match="limit is 100"):
            request_bounds.check_prompt("a" * 101)
    finally:
        request_bounds._current = saved


def _big_png_b64(width: int, height: int) -> str:
    """A PNG with a huge header size but few bytes (mode 1, all black)."""
    buf = io.BytesIO()
    Image.new("1", (width, height)).save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode()


def test_large_images_are_refused_before_decoding(http):
    big = _big_png_b64(13000, 13000)
    assert len(big) < 2_000_000
    with_pixels = "169000000 pixels"
    _error(http.post("/sdapi/v1/img2img", json={**GEN, "init_images": [big]}), 422, "init_images[0]", with_pixels)
    _error(http.post("/sdapi/v1/png-info", json={"image": big}), 422, "image", "--max-image-pixels")
    _error(http.post("/sdapi/v1/extra-single-image", json={"image": big}), 422, "image", with_pixels)
    small = _png_b64(Image.new("RGB", (8, 8)))
    _error(http.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": small}] * 17}), 422, "imageList", "16")
    _error(http.post("/sdapi/v1/img2img", json={**GEN, "init_images": [small] * 17}), 422, "init_images", "16")


# ---- malformed values ----------------------------------------------------------------------------------------

def _raw(http, path: str, text: str) -> httpx.Response:
    return http.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("body,needles", [
    ('{"prompt": "a", "steps": NaN}', ["steps"]),
    ('{"prompt": "a", "width": Infinity}', ["width"]),
    ('{"prompt": "a", "seed": -Infinity}', ["seed"]),
    ('{"prompt": "a", "cfg_scale": NaN}', ["cfg_scale"]),
    ('{"prompt": "a", "s_noise": NaN}', ["s_noise"]),
    ('{"prompt": "a", "s_churn": Infinity}', ["s_churn"]),
    ('{"prompt": "a", "override_settings": {"s_noise": NaN}}', ["s_noise"]),
    ('{"prompt": "a", "script_args": [1, NaN]}', ["script_args"]),
    ('{"prompt": "a\\ud800b"}', ["prompt", "surrogate"]),
    ('{"prompt": "a", "styles": ["\\udfff"]}', ["styles", "surrogate"]),
])
def test_non_finite_numbers_and_invalid_strings_are_422(http, body, needles):
    _error(_raw(http, "/sdapi/v1/txt2img", body), 422, *needles)


def test_seeds_and_sampler_parameters(http):
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, "seed": -2}), 422, "seed", "-1 (random)")
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, "subseed": 2**64}), 422, "subseed")
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, "s_churn": -1}), 422, "s_churn")
    r = http.post("/sdapi/v1/txt2img", json={**GEN, "s_churn": 0.5, "s_noise": 1.0, "send_images": False})
    assert r.status_code == 200, r.text


def test_options_refuse_nan_surrogates_and_paths(http):
    _error(_raw(http, "/sdapi/v1/options", '{"s_noise": NaN}'), 422, "s_noise")
    _error(_raw(http, "/sdapi/v1/options", '{"sd_vae": "\\ud800"}'), 422)
    _error(http.post("/sdapi/v1/options", json={"sd_hypernetwork": "../../x"}), 422, "sd_hypernetwork")
    _error(http.post("/sdapi/v1/options", json={"sd_lora": "..\\x"}), 422, "sd_lora")


def test_png_info_without_image_is_422(http):
    _error(http.post("/sdapi/v1/png-info", json={"image": ""}), 422, "image")
    _error(http.post("/sdapi/v1/png-info", json={}), 422, "image")


# ---- output confinement --------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value", [
    ("directories_filename_pattern", "../../../../tmp/relx"),
    ("directories_filename_pattern", "/tmp/relx"),
    ("samples_filename_pattern", "../[seed]"),
    ("samples_filename_pattern", "x" * 20_000),
    ("outdir_samples", "/tmp/relx"),
    ("outdir_txt2img_samples", "../../outside"),
    ("outdir_save", "/proc/self"),
])
def test_settings_cannot_send_images_out_of_the_data_folder(http, key, value):
    _error(http.post("/sdapi/v1/options", json={key: value}), 422, key)
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, "override_settings": {key: value}}), 422, key)


def test_saved_images_stay_inside_and_are_0644(live, http):
    r = http.post("/sdapi/v1/txt2img", json={**GEN, "save_images": True, "override_settings": {
        "directories_filename_pattern": "[seed]/sub", "save_to_dirs": True, "outdir_txt2img_samples": "out/t2i"}})
    assert r.status_code == 200, r.text
    saved = [p for p in (live["data"] / "out" / "t2i").rglob("*.png")]
    assert saved and all(p.stat().st_mode & 0o777 == 0o644 for p in saved)
    assert all(live["data"] in p.parents for p in saved)


def test_allowed_output_path_flag(tmp_path):
    from modules.settings import output_paths
    from modules.settings.paths import Paths

    outside = tmp_path / "elsewhere"
    args = cmd_args.parse_args(["--data-dir", str(tmp_path / "d"), "--allowed-output-path", str(outside)], environ={})
    paths = Paths.from_args(args, Path(__file__).resolve().parents[2])
    output_paths.check_output_setting("outdir_samples", str(outside / "x"), paths)
    with pytest.raises(output_paths.OutputPathRefused):
        output_paths.check_output_setting("outdir_samples", str(tmp_path / "other"), paths)


# ---- server-side failures --------------------------------------------------------------------------------

def test_a_checkpoint_that_cannot_load_is_422_and_the_model_stays(live, http):
    engine = live["engine"]
    before = engine.checkpoint_info.title
    body = _error(http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "broken.safetensors"}), 422,
                  "broken.safetensors")
    assert "checkpoint" in body["detail"]
    assert engine.checkpoint_info.title == before and engine.model is not None
    assert http.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == before
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, "override_settings": {"sd_model_checkpoint": "broken"}}),
           422, "broken.safetensors")
    assert engine.checkpoint_info.title == before
    assert http.post("/sdapi/v1/txt2img", json=GEN).status_code == 200


def test_full_disk_is_507_and_the_setting_is_not_applied(live, http, monkeypatch):
    engine = live["engine"]

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    before = engine.options.get("jpeg_quality")
    monkeypatch.setattr(engine.options, "save", full)
    _error(http.post("/sdapi/v1/options", json={"jpeg_quality": 55}), 507, "disk space")
    assert engine.options.get("jpeg_quality") == before
    monkeypatch.undo()
    from modules.core import image_files

    monkeypatch.setattr(image_files, "_write_temp", full)
    _error(http.post("/sdapi/v1/txt2img", json={**GEN, "save_images": True}), 507, "disk space")
    monkeypatch.undo()
    assert http.post("/sdapi/v1/txt2img", json=GEN).status_code == 200


def test_startup_falls_back_to_the_demo_model_when_the_checkpoint_fails(tmp_path):
    import webui

    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    (ckpt_dir / "only.ckpt").write_bytes(b"not a checkpoint at all")
    args = cmd_args.parse_args(["--data-dir", str(tmp_path), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    webui._load_initial_model(engine)
    assert engine.model is not None and engine.checkpoint_info.filename == str(engine._builtin_info().filename)
    from modules.core.request import GenerationRequest

    out = engine.generate(GenerationRequest(prompt="a", steps=1, width=64, height=64, sampler_name="Euler", seed=1,
                                            do_not_save_samples=True, do_not_save_grid=True))
    assert len(out.images) == 1


def test_an_interrupted_job_ends_and_the_next_one_runs(live, http):
    state = live["engine"].state
    out = {}
    t = threading.Thread(target=lambda: out.update(r=httpx.post(live["url"] + "/sdapi/v1/txt2img", timeout=120, json={
        **GEN, "steps": 200, "send_images": False})))
    t.start()
    deadline = time.monotonic() + 60
    while state.sampling_step < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.perf_counter()
    http.post("/sdapi/v1/interrupt")
    t.join(60)
    assert out["r"].status_code == 200 and time.perf_counter() - t0 < 10
    assert http.post("/sdapi/v1/txt2img", json=GEN).status_code == 200


def test_a_body_of_millions_of_values_is_refused_before_parsing(live, http):
    body = json.dumps({**GEN, "script_args": [1] * 3_000_000})
    with ProgressWatch(live["url"]) as watch:
        r = http.post("/sdapi/v1/txt2img", content=body, headers={"Content-Type": "application/json"})
        _error(r, 413, "values", "1000000")
        big = json.dumps({**GEN, "comments": {"x": "a" * 30_000_000}, "send_images": False})
        assert http.post("/sdapi/v1/txt2img", content=big, headers={"Content-Type": "application/json"}).status_code == 200
    assert not watch.failures and watch.slowest < 1.0
