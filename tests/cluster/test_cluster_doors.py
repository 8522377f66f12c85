"""The doors in front of the replicas, unchanged: the webuiapi client (A1111's), progress with queue
positions, and the page."""
from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.server.test_api_robustness import LiveServer

webuiapi = pytest.importorskip("webuiapi")


@pytest.fixture(scope="module")
def live(cluster_env):
    import webui

    app = webui.create_app(cluster_env["engine"], cluster_env["args"])
    server = LiveServer(app)
    yield {**cluster_env, "port": server.port, "url": server.url}
    server.stop()


def _ckpt(env, name):
    return env["engine"].resolve_checkpoint(name).title


def test_webuiapi_client_gets_the_single_engine_pictures(live):
    import torch

    from modules.core.request import GenerationRequest
    from modules.scripting.host import ScriptHost

    api = webuiapi.WebUIApi(host="127.0.0.1", port=live["port"], sampler="Euler a", steps=4)
    model = _ckpt(live, "demo-a.safetensors")
    result = api.txt2img(prompt="a green star", seed=21, width=64, height=64, n_iter=2, cfg_scale=5,
                         override_settings={"sd_model_checkpoint": model, "samples_save": False})
    assert result.info["all_seeds"] == [21, 22] and len(result.images) == 2
    ref_engine = live["reference"]
    threads = torch.get_num_threads()
    torch.set_num_threads(live["cluster"].torch_threads)
    try:
        ref = ScriptHost.for_engine(ref_engine).generate(GenerationRequest(
            prompt="a green star", seed=21, width=64, height=64, n_iter=2, cfg_scale=5.0, steps=4, sampler_name="Euler a",
            override_settings={"sd_model_checkpoint": model, "samples_save": False}))
    finally:
        torch.set_num_threads(threads)
    assert result.info["infotexts"] == ref.infotexts
    for got, want in zip(result.images, ref.images):
        assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want.convert("RGB")))
    assert result.images[1].info["parameters"] == ref.infotexts[1]


def test_outputs_are_written_once_by_the_front(live):
    api = webuiapi.WebUIApi(host="127.0.0.1", port=live["port"], sampler="Euler a", steps=3)
    outdir = live["data"] / "outputs" / "txt2img-images"
    griddir = live["data"] / "outputs" / "txt2img-grids"
    before = set(outdir.rglob("*.png")) | set(griddir.rglob("*.png"))
    api.txt2img(prompt="a blue square", seed=3, width=64, height=64, n_iter=2, cfg_scale=5, save_images=True,
                override_settings={"sd_model_checkpoint": _ckpt(live, "tiny-b.safetensors")})
    new = sorted(set(outdir.rglob("*.png")) - before)
    assert len(new) == 2 and [p.name for p in new] == ["00000-3.png", "00001-4.png"]
    assert len(set(griddir.rglob("*.png")) - before) == 1


def test_progress_shows_running_and_queued_jobs(live):
    model = _ckpt(live, "demo-a.safetensors")
    results = {}

    def run(task, steps):
        with httpx.Client(base_url=live["url"], timeout=300) as c:
            results[task] = c.post("/sdapi/v1/txt2img", json={
                "prompt": "a red circle", "seed": 1, "steps": steps, "width": 64, "height": 64, "sampler_name": "Euler a",
                "force_task_id": task, "override_settings": {"sd_model_checkpoint": model, "samples_save": False}})

    tasks = [("task(p1)", 40), ("task(p2)", 40), ("task(p3)", 3)]
    threads = []
    for task, steps in tasks:
        threads.append(threading.Thread(target=run, args=(task, steps)))
        threads[-1].start()
        time.sleep(0.3)
    seen_queued = seen_active = False
    with httpx.Client(base_url=live["url"], timeout=30) as c:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (seen_queued and seen_active):
            third = c.post("/internal/progress", json={"id_task": "task(p3)"}).json()
            first = c.post("/internal/progress", json={"id_task": "task(p1)"}).json()
            if third["queued"] and third["textinfo"].startswith("In queue: "):
                seen_queued = True
            if first["active"] and first["sampling_steps"] == 40 and first["job_count"] == 1:
                seen_active = True
            time.sleep(0.1)
        state = c.get("/sdapi/v1/progress").json()["state"]
    for t in threads:
        t.join(300)
    assert seen_active and seen_queued
    assert "job_count" in state
    assert [results[t].status_code for t, _ in tasks] == [200, 200, 200]


def test_page_is_served(live):
    with httpx.Client(base_url=live["url"], timeout=60) as c:
        page = c.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert c.get("/sdapi/v1/sd-models").json()[0]["model_name"] in ("demo-a", "tiny-b")
        # Choosing a checkpoint on the front records the default for later requests and loads nothing there.
        title = _ckpt(live, "tiny-b.safetensors")
        assert c.post("/sdapi/v1/options", json={"sd_model_checkpoint": title}).status_code == 200
        assert c.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == title
        assert live["engine"].model is None and live["engine"].checkpoint_info.title == title


def test_page_generates_through_the_replicas(live, browser):
    """The page, unchanged: Generate with batch count 2 shows the pictures the replicas made, saved once."""
    from io import BytesIO

    from PIL import Image

    from tests.browser_harness import open_page, shot

    def set_number(pg, elem_id, value):
        box = pg.locator(f"#{elem_id} input[type=number]")
        box.fill(str(value))
        box.press("Tab")

    outdir = live["data"] / "outputs" / "txt2img-images"
    before = set(outdir.rglob("*.png"))
    with open_page(browser, live["url"] + "/", "#txt2img_prompt textarea", viewport={"width": 1400, "height": 1100}) as pg:
        pg.locator("#txt2img_prompt textarea").fill("a yellow triangle")
        for elem, value in (("txt2img_steps", 3), ("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_seed", 4321),
                            ("txt2img_batch_count", 2)):
            set_number(pg, elem, value)
        pg.locator("#txt2img_generate").click()
        pg.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length >= 2", timeout=120_000)
        pg.locator("#html_info_txt2img .sd-infotext").wait_for(timeout=60_000)
        info = pg.locator("#html_info_txt2img").inner_text()
        shot(pg, "cluster_page_txt2img.png")
        assert info.startswith("a yellow triangle\n") and "Seed: 4321" in info
        imgs = pg.locator("#txt2img_gallery img")  # the batch grid may come first, as in A1111
        shown = [Image.open(BytesIO(pg.request.get(imgs.nth(i).get_attribute("src")).body())).convert("RGB").tobytes()
                 for i in range(imgs.count())]
    saved = sorted(set(outdir.rglob("*.png")) - before)
    assert [p.name.split("-", 1)[1] for p in saved] == ["4321.png", "4322.png"]
    assert all(Image.open(p).convert("RGB").tobytes() in shown for p in saved)
