"""A1111's ``modules.progress`` and ``call_queue.queue_lock`` as queue-running extensions (agent-scheduler, video
extensions) use them: a task id they queue is 'queued' in /internal/progress and /internal/pending-tasks, 'active'
once started inside ``queue_lock``, 'completed' after ``finish_task``; ``queue_lock`` is the Engine's queue (an API
generation waits for it) and ``process_images`` inside it joins the turn instead of deadlocking."""
from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from modules.scripting import runtime


@pytest.fixture()
def client(tiny_engine):
    import argparse

    import webui

    args = argparse.Namespace(**{**vars(tiny_engine.args), "api": True, "nowebui": True})
    with runtime.using(tiny_engine):
        yield TestClient(webui.create_app(tiny_engine, args))


def _progress(client, task_id: str) -> dict:
    r = client.post("/internal/progress", json={"id_task": task_id, "live_preview": False})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_task_an_extension_queues_is_seen_queued_running_and_done(client):
    from modules import call_queue, progress

    task_id = progress.create_task_id("scheduler")
    assert task_id.startswith("task(scheduler-") and task_id.endswith(")")
    progress.add_task_to_queue(task_id)
    assert task_id in progress.pending_tasks
    assert client.get("/internal/pending-tasks").json()["tasks"][-1] == task_id
    assert _progress(client, task_id)["queued"] is True
    with call_queue.queue_lock:
        progress.start_task(task_id)
        assert progress.current_task == task_id
        state = _progress(client, task_id)
        assert state["active"] is True and state["queued"] is False
        assert task_id not in client.get("/internal/pending-tasks").json()["tasks"]
        progress.finish_task(task_id)
    assert progress.current_task is None and task_id in progress.finished_tasks
    done = _progress(client, task_id)
    assert done["completed"] is True and done["active"] is False


def test_queue_lock_holds_back_an_api_generation_and_process_images_joins_it(client, tiny_engine):
    from modules import call_queue, processing

    finished: list[float] = []

    def generate() -> None:
        r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1, "width": 64, "height": 64})
        assert r.status_code == 200
        finished.append(time.monotonic())

    with call_queue.queue_lock:
        thread = threading.Thread(target=generate)
        thread.start()
        deadline = time.monotonic() + 30
        while tiny_engine.state.queue.queued < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tiny_engine.state.queue.queued == 2  # ours and the API's, which waits
        p = processing.StableDiffusionProcessingTxt2Img(prompt="inside the lock", steps=1, width=64, height=64,
                                                          seed=1)
        p.engine = tiny_engine
        inner = processing.process_images(p)  # joins our turn
        assert len(inner.images) == 1 and not finished
        released = time.monotonic()
    thread.join(timeout=120)
    assert finished and finished[0] >= released


def test_progress_models_have_a1111s_fields():
    from modules import progress

    req = progress.ProgressRequest(id_task="task(x)")
    assert (req.id_live_preview, req.live_preview) == (-1, True)
    res = progress.ProgressResponse(active=False, queued=True, completed=False)
    assert set(res.model_dump()) >= {"active", "queued", "completed", "progress", "eta", "live_preview",
                                     "id_live_preview", "textinfo"}
