"""The front's dispatcher without Ray: splitting, joining, retrying a lost part, failing clearly, saving once.

A fake deployment handle stands in for Serve; each part's result is made by an ordinary Engine over the same
files, so the joined result can be compared with one run of the whole request.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest

from modules.core.request import GenerationRequest


class ReplicaLost(Exception):
    pass


class FakeHandle:
    """``handle.options(multiplexed_model_id=...).generate.remote(part).result(timeout_s=...)``, run by ``engine``;
    the first ``lose`` sends raise ReplicaLost as a dead replica's would."""

    def __init__(self, engine, lose: int = 0) -> None:
        from modules.scripting.host import ScriptHost

        self.host = ScriptHost.for_engine(engine)
        self.lose = lose
        self.sent: list[tuple[str, str, int, int]] = []
        self.lock = threading.Lock()

    def options(self, multiplexed_model_id: str):
        self.model_id = multiplexed_model_id
        return self

    @property
    def generate(self):
        return self

    def remote(self, part):
        with self.lock:
            self.sent.append((self.model_id, part.id_task, part.n_iter, part.seed))
            lost = self.lose > 0
            self.lose -= 1 if lost else 0

        def result(timeout_s):
            if lost:
                raise ReplicaLost("the replica's process died")
            assert part.do_not_save_samples and part.do_not_save_grid  # replicas never write files
            return "ok", self.host.generate(part)

        return SimpleNamespace(result=result)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    import webui
    from modules.settings import cmd_args
    from tests import tiny_models

    data = tmp_path_factory.mktemp("dispatch")
    ckpts = data / "models" / "Stable-diffusion"
    ckpts.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpts / "tiny-d.safetensors", "sd1")
    front = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data), "--replicas", "2", "--nowebui"], environ={}))
    worker = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={}))
    return SimpleNamespace(front=front, worker=worker, data=data)


def _host(engines, lose=0):
    from modules.cluster.dispatch import ClusterHost
    from modules.scripting.host import ScriptHost

    host = ScriptHost.for_engine(engines.front)
    assert isinstance(host, ClusterHost)
    handle = FakeHandle(engines.worker, lose=lose)
    host.cluster = SimpleNamespace(replicas=2, handle=handle, board_call=lambda *a: None,
                                   is_replica_loss=lambda exc: isinstance(exc, ReplicaLost))
    return host, handle


def _req(**kw):
    base = dict(prompt="a cat", steps=2, width=64, height=64, sampler_name="Euler a", seed=40, n_iter=4, cfg_scale=5.0)
    base.update(kw)
    return GenerationRequest(**base)


def test_split_parts_carry_the_seeds_of_one_run():
    from modules.cluster.dispatch import ClusterHost

    host = SimpleNamespace(cluster=SimpleNamespace(replicas=2))
    parts = ClusterHost.split(host, _req(n_iter=5, batch_size=2, seed=10, subseed=3), "t")
    assert [(p.n_iter, p.seed, p.subseed, p.id_task) for p in parts] == [(3, 10, 3, "t#0"), (2, 16, 9, "t#1")]
    varied = ClusterHost.split(host, _req(n_iter=2, seed=10, subseed=3, subseed_strength=0.5), "t")
    assert [(p.seed, p.subseed) for p in varied] == [(10, 3), (10, 4)]  # variation seeds: same seed, next subseed
    assert len(ClusterHost.split(host, _req(n_iter=4, script_name="x/y/z plot"), "t")) == 1  # scripts run whole
    random = ClusterHost.split(host, _req(n_iter=2, seed=-1), "t")
    assert random[1].seed == random[0].seed + 1 and random[0].seed >= 0


def test_joined_result_equals_one_run_and_outputs_are_written_once(engines):
    from modules.scripting.host import ScriptHost

    host, handle = _host(engines)
    got = host.generate(_req(id_task="task(j)"))
    whole = ScriptHost.for_engine(engines.worker).generate(_req(do_not_save_samples=True, do_not_save_grid=True))
    assert [s[1:] for s in handle.sent] == [("task(j)#0", 2, 40), ("task(j)#1", 2, 42)]
    assert got.seeds == whole.seeds == [40, 41, 42, 43] and got.infotexts == whole.infotexts
    assert got.info["all_seeds"] == [40, 41, 42, 43] and got.info["infotexts"] == whole.infotexts
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(got.images, whole.images))
    saved = sorted((engines.data / "outputs" / "txt2img-images").rglob("*.png"))
    assert [p.name.split("-", 1)[1] for p in saved] == ["40.png", "41.png", "42.png", "43.png"]
    assert len(list((engines.data / "outputs" / "txt2img-grids").rglob("*.png"))) == 1


def test_a_lost_part_is_sent_again_then_the_job_fails_clearly(engines):
    from modules.cluster.dispatch import MAX_ATTEMPTS, ReplicaFailed

    host, handle = _host(engines, lose=1)
    got = host.generate(_req(n_iter=2, do_not_save_samples=True, do_not_save_grid=True, id_task="task(r)"))
    assert got.seeds == [40, 41] and len(handle.sent) == 3  # 2 parts, one sent twice
    host, handle = _host(engines, lose=100)
    with pytest.raises(ReplicaFailed, match=f"lost {MAX_ATTEMPTS} times"):
        host.generate(_req(n_iter=1, do_not_save_samples=True, do_not_save_grid=True))
    assert len(handle.sent) == MAX_ATTEMPTS


def test_a_bad_request_is_refused_by_the_front(engines):
    from modules.core.request import RequestError

    host, handle = _host(engines)
    with pytest.raises(RequestError):
        host.generate(_req(steps=0))
    assert handle.sent == []
