"""Two Engine replicas on a local Ray Serve cluster, compared with one ordinary Engine on the same files."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from modules.core.request import GenerationRequest

DEMO_A = "demo-a.safetensors"
TINY_B = "tiny-b.safetensors"


def _title(engine, name):
    return engine.resolve_checkpoint(name).title


def _request(engine, model, **kw):
    base = dict(prompt="a red circle on a blue background", negative_prompt="", steps=4, width=64, height=64,
                sampler_name="Euler a", seed=11, cfg_scale=5.0,
                override_settings={"sd_model_checkpoint": _title(engine, model), "samples_save": False})
    base.update(kw)
    return GenerationRequest(**base)


def _pixels(processed):
    return [np.asarray(im.convert("RGB")).copy() for im in processed.images]


def _reference(env, model, **kw):
    from modules.scripting.host import ScriptHost

    import torch

    ref = env["reference"]
    threads = torch.get_num_threads()
    torch.set_num_threads(env["cluster"].torch_threads)  # float sums in the same order as in a replica
    try:
        return ScriptHost.for_engine(ref).generate(_request(ref, model, **kw))
    finally:
        torch.set_num_threads(threads)


def _cluster(env, model, **kw):
    from modules.scripting.host import ScriptHost

    engine = env["engine"]
    return ScriptHost.for_engine(engine).generate(_request(engine, model, **kw))


def _snapshots(env):
    return env["cluster"].board_call("snapshots")


def _wait_for_job(env, task, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for snap in _snapshots(env).values():
            if (snap.get("id_task") or "").startswith(task) and snap.get("sampling_step", 0) >= 1:
                return snap
        time.sleep(0.1)
    raise AssertionError(f"{task} never started")


def test_same_pixels_seeds_and_infotexts_as_one_engine(cluster_env):
    ref = _reference(cluster_env, DEMO_A, batch_size=2)
    got = _cluster(cluster_env, DEMO_A, batch_size=2)
    assert got.seeds == ref.seeds == [11, 12]
    assert got.infotexts == ref.infotexts
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(got), _pixels(ref))) and len(got.images) == 2


def test_n_iter_4_split_over_2_replicas(cluster_env):
    ref = _reference(cluster_env, DEMO_A, n_iter=4, seed=100)
    got = _cluster(cluster_env, DEMO_A, n_iter=4, seed=100, id_task="task(split)")
    assert got.seeds == ref.seeds == [100, 101, 102, 103]
    assert got.infotexts == ref.infotexts
    assert got.info["all_seeds"] == ref.info["all_seeds"] and got.info["infotexts"] == ref.info["infotexts"]
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(got), _pixels(ref))) and len(got.images) == 4
    from modules.scripting.host import ScriptHost

    parts = ScriptHost.for_engine(cluster_env["engine"]).split(_request(cluster_env["engine"], DEMO_A, n_iter=4, seed=100), "t")
    assert [(p.n_iter, p.seed, p.id_task) for p in parts] == [(2, 100, "t#0"), (2, 102, "t#1")]


def test_two_checkpoints_at_once_without_switching(cluster_env):
    ref_a = _pixels(_reference(cluster_env, DEMO_A, seed=5))
    ref_b = _pixels(_reference(cluster_env, TINY_B, seed=5))

    def both():
        out = {}
        threads = [threading.Thread(target=lambda m=m: out.__setitem__(m, _cluster(cluster_env, m, seed=5)))
                   for m in (DEMO_A, TINY_B)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return out

    both()  # each replica loads one of them
    time.sleep(0.5)
    loads_before = {k: s["model_generation"] for k, s in _snapshots(cluster_env).items()}
    models = {s["model"].split(" [")[0] for s in _snapshots(cluster_env).values()}
    assert models == {DEMO_A, TINY_B}  # one each
    for _ in range(2):
        out = both()
        assert np.array_equal(_pixels(out[DEMO_A])[0], ref_a[0])
        assert np.array_equal(_pixels(out[TINY_B])[0], ref_b[0])
    time.sleep(0.5)
    loads_after = {k: s["model_generation"] for k, s in _snapshots(cluster_env).items()}
    assert loads_after == loads_before  # no replica switched its checkpoint


def test_lora_tags_travel_with_the_request(cluster_env):
    prompt = "a red circle on a blue background <lora:sd-demo-striped:1>"
    ref = _reference(cluster_env, DEMO_A, prompt=prompt, n_iter=2, seed=8)
    got = _cluster(cluster_env, DEMO_A, prompt=prompt, n_iter=2, seed=8)
    assert "Lora hashes" in got.infotexts[0] and got.infotexts == ref.infotexts
    assert all(np.array_equal(a, b) for a, b in zip(_pixels(got), _pixels(ref))) and len(got.images) == 2
    plain = _cluster(cluster_env, DEMO_A, n_iter=1, seed=8)  # the next job on that replica has no LoRA left
    assert np.array_equal(_pixels(plain)[0], _pixels(_reference(cluster_env, DEMO_A, seed=8))[0])


def test_interrupt_reaches_the_replica_running_the_job(cluster_env):
    from modules.scripting.host import ScriptHost

    host = ScriptHost.for_engine(cluster_env["engine"])
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("p", _cluster(cluster_env, DEMO_A, steps=60, n_iter=4,
                                                                       id_task="task(stop)")))
    t.start()
    _wait_for_job(cluster_env, "task(stop)")
    assert host.state.running_ids() == ["task(stop)"] or _wait_running(host, "task(stop)")
    # The front mirrors the replicas' reports on its own poll, which may come just before sampling began there.
    view = _wait_view(host, "task(stop)", lambda v: v.sampling_steps > 0)
    assert view.job_count == 4 and view.sampling_steps == 60
    host.state.interrupt()
    t.join(60)
    assert not t.is_alive()
    # Each replica stops its current image (A1111 keeps the interrupted picture) and starts no other; on a loaded
    # machine a replica may finish one more picture before the command reaches it.
    assert out["p"].interrupted and len(out["p"].images) < 4, len(out["p"].images)


def _wait_view(host, task, ready, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = host.state.view(task)
        if view is not None and ready(view):
            return view
        time.sleep(0.05)
    return host.state.view(task)


def _wait_running(host, task, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if task in host.state.running_ids():
            return True
        time.sleep(0.05)
    return False


def test_a_replica_killed_mid_job_has_its_job_run_again(cluster_env):
    ref = _pixels(_reference(cluster_env, DEMO_A, steps=30, seed=77))
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("p", _cluster(cluster_env, DEMO_A, steps=30, seed=77,
                                                                       id_task="task(kill)")))
    t.start()
    snap = _wait_for_job(cluster_env, "task(kill)")
    os.kill(snap["pid"], signal.SIGKILL)
    t.join(240)
    assert not t.is_alive()
    got = out["p"]
    assert len(got.images) == 1 and np.array_equal(_pixels(got)[0], ref[0])
    # The other replica still serves.
    assert np.array_equal(_pixels(_cluster(cluster_env, DEMO_A, steps=30, seed=77))[0], ref[0])
