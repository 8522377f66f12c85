"""The front's script host in cluster mode: every generation the doors ask for runs on the replicas.

:class:`ClusterHost` replaces :meth:`ScriptHost.generate` (the one call the API and the page make) and keeps
everything else of the script layer (the page and ``check_scripts`` still list the scripts). For each request:

- its model travels with it: the checkpoint (the request's ``override_settings`` or the front's setting) is
  the Serve multiplexed model id, and the front's current settings go along as the request's overrides, so a
  replica never depends on what it ran before and a settings change never has to reach every replica;
- ``n_iter`` > 1 without a script is split into contiguous runs of iterations, one per replica, with the
  seeds each would have had in one run, and the results are joined in order: the same images, seeds and
  infotexts as one Engine gives;
- a replica that dies (its process killed, its node lost) has its part sent again, to another replica once
  Serve has routed around it, at most ``MAX_ATTEMPTS`` times; then the job fails with a clear error;
- the replicas save nothing: the front writes the images, the grid and params.txt once, after the job.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from modules.cluster.front_state import ClusterJobState, chunk_task
from modules.core import image_files, samplers
from modules.core.request import GenerationRequest, Processed, RequestError
from modules.engine import pipeline, rng
from modules.scripting.host import ScriptHost

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # sends of one part of a job before it fails
JOB_TIMEOUT_S = 3600.0  # one part of a job, on one replica
POLL_PERIOD_S = 0.25  # how often the front reads the replicas' progress
CONCAT_INFO = ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds", "infotexts")


class ReplicaFailed(RuntimeError):
    """A part of a job was lost with its replica ``MAX_ATTEMPTS`` times."""


@dataclass
class _Job:
    task: str
    total: int
    started: float
    parts: list[str] = field(default_factory=list)
    done: int = 0  # iterations finished by parts that came back
    interrupted: bool = False


class ClusterHost(ScriptHost):
    """The script host of the front Engine (which holds settings and lists, and loads no model)."""

    def __init__(self, engine: "Engine") -> None:
        super().__init__(engine)
        self.cluster: Any = None  # a runtime.Cluster, attached by :meth:`attach`
        self._jobs: dict[str, _Job] = {}
        self._jobs_lock = threading.Lock()
        self._stop = threading.Event()
        self.state = ClusterJobState(self._control)
        engine.state = self.state  # what the progress routes and the page read
        # The front loads no model: choosing a checkpoint (Settings, the cards, /options) only records it as the
        # default for later requests; the replicas load it when a request needs it.
        engine.ensure_model = self._note_checkpoint  # type: ignore[method-assign]
        engine.load_checkpoint = lambda info: setattr(engine, "checkpoint_info", info)  # type: ignore[method-assign]

    def _note_checkpoint(self) -> None:
        engine = self.engine
        engine.checkpoint_info = engine.resolve_checkpoint(engine.options.get("sd_model_checkpoint") or None)

    def attach(self, cluster: Any) -> "ClusterHost":
        self.cluster = cluster
        threading.Thread(target=self._poll_loop, daemon=True, name="cluster-progress").start()
        return self

    def close(self) -> None:
        self._stop.set()

    # --- one generation ----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Processed:
        request.validate()
        engine = self.engine
        task = request.id_task or f"task(cluster-{uuid.uuid4().hex[:12]})"
        model_id = self.model_id(request)
        parts = self.split(self.part_template(request, model_id), task)
        job = _Job(task, request.n_iter, time.time(), [p.id_task for p in parts])
        with self._jobs_lock:
            self._jobs[task] = job
        try:
            pending = [self._send(part, model_id) for part in parts]  # all at once: idle replicas take them
            results = []
            for part, response in zip(parts, pending):
                result = self._wait(part, model_id, response, job)
                if result is not None:
                    results.append(result)
                    job.done += part.n_iter
        finally:
            with self._jobs_lock:
                self._jobs.pop(task, None)
            self._board_call("forget", job.parts)
        if not request.override_settings_restore_afterwards:
            for key, value in (request.override_settings or {}).items():  # A1111: they become the settings
                engine.options.set(key, value, run_callbacks=False)
        processed = join_results(request, results, interrupted=job.interrupted)
        self.save_outputs(processed, model_id)
        return processed

    def model_id(self, request: GenerationRequest) -> str:
        """The title of the checkpoint ``request`` runs on: its override, else the front's setting."""
        name = (request.override_settings or {}).get("sd_model_checkpoint") or self.engine.options.get("sd_model_checkpoint")
        return self.engine.resolve_checkpoint(name or None).title

    def part_template(self, request: GenerationRequest, model_id: str) -> GenerationRequest:
        """``request`` as a replica runs it: with the front's settings and its checkpoint, saving nothing."""
        opts = self.engine.options
        settings = {info.key: opts.get(info.key) for info in opts.infos() if opts.get(info.key) != info.default}
        overrides = {**settings, **(request.override_settings or {}), "sd_model_checkpoint": model_id}
        return dataclasses.replace(request, override_settings=overrides, override_settings_restore_afterwards=True,
                                   do_not_save_samples=True, do_not_save_grid=True)

    def split(self, request: GenerationRequest, task: str) -> list[GenerationRequest]:
        """Contiguous runs of ``n_iter`` for the replicas, each with the seeds one run gives its images."""
        replicas = self.cluster.replicas if self.cluster is not None else 1
        whole = request.n_iter < 2 or replicas < 2 or bool(request.script_name) or bool(request.alwayson_scripts) \
            or isinstance(request.seed, list) or isinstance(request.subseed, list) or isinstance(request.prompt, list) \
            or isinstance(request.negative_prompt, list)
        if whole:
            return [dataclasses.replace(request, id_task=f"{task}#0")]
        seed, subseed = rng.fix_seed(request.seed), rng.fix_seed(request.subseed)
        count = min(request.n_iter, replicas)
        sizes = [request.n_iter // count + (1 if i < request.n_iter % count else 0) for i in range(count)]
        parts, start = [], 0
        for k, size in enumerate(sizes):
            offset = start * request.batch_size
            parts.append(dataclasses.replace(
                request, n_iter=size, id_task=f"{task}#{k}",
                seed=seed + (offset if request.subseed_strength == 0 else 0), subseed=subseed + offset))
            start += size
        return parts

    # --- sending, waiting, retrying ----------------------------------------------------------------
    def _send(self, part: GenerationRequest, model_id: str) -> Any:
        return self.cluster.handle.options(multiplexed_model_id=model_id).generate.remote(part)

    def _wait(self, part: GenerationRequest, model_id: str, response: Any, job: _Job) -> Processed | None:
        lost: list[str] = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                status, value = response.result(timeout_s=JOB_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - sorted below: a lost replica is retried, the rest raised
                if not self.cluster.is_replica_loss(exc):
                    raise
                lost.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                log.warning("job %s: replica lost (attempt %d/%d): %s", part.id_task, attempt, MAX_ATTEMPTS, lost[-1])
                if job.interrupted:
                    return None
                if attempt < MAX_ATTEMPTS:
                    response = self._send(part, model_id)
                continue
            if status == "error":
                raise rebuild_error(value)
            return value
        raise ReplicaFailed(f"job {part.id_task} failed: its replica was lost {MAX_ATTEMPTS} times "
                            f"({'; '.join(lost)})")

    # --- progress and control ----------------------------------------------------------------------
    def _control(self, action: str) -> None:
        """Interrupt / skip every job running now (A1111's buttons and routes have no task id)."""
        running = set(self.state.running_ids())
        with self._jobs_lock:
            jobs = [j for j in self._jobs.values() if j.task in running]
        if action == "interrupt":
            for job in jobs:
                job.interrupted = True
            self._board_call("command", [p for j in jobs for p in j.parts], "interrupt")
        else:
            running_parts = [s["id_task"] for s in self._snapshots().values() if s.get("id_task")]
            self._board_call("command", [p for p in running_parts if chunk_task(p) in running], "skip")

    def _snapshots(self) -> dict[str, dict[str, Any]]:
        return self._board_call("snapshots") or {}

    def _board_call(self, method: str, *args: Any) -> Any:
        if self.cluster is None:
            return None
        try:
            return self.cluster.board_call(method, *args)
        except Exception as exc:  # progress is best effort; jobs do not depend on it
            log.debug("board %s failed: %s", method, exc)
            return None

    def _poll_loop(self) -> None:
        while not self._stop.wait(POLL_PERIOD_S):
            with self._jobs_lock:
                jobs = {j.task: (j.total, j.started, j.done) for j in self._jobs.values()}
            snapshots = self._snapshots() if jobs else {}
            self.state.update(snapshots, jobs)

    # --- outputs, written once, here ---------------------------------------------------------------
    def save_outputs(self, processed: Processed, model_id: str) -> None:
        req, engine = processed.request, self.engine
        with engine.options.scoped(_known(engine.options, req.override_settings)):
            opts = engine.options
            target = SimpleNamespace(options=opts, paths=engine.paths, checkpoint_info=engine.resolve_checkpoint(model_id),
                                     state=SimpleNamespace(job_timestamp=processed.info.get("job_timestamp") or "0"))
            plan = _save_plan(req, processed, opts)
            if opts.get("samples_save") and not req.do_not_save_samples:
                for index, (image, text) in enumerate(zip(processed.images, processed.infotexts)):
                    processed.saved_paths.append(str(pipeline._save(target, image, plan, index, text, grid=False)))
            if len(processed.images) > 1 and opts.get("grid_save") and not req.do_not_save_grid:
                grid = image_files.image_grid(processed.images)
                text = processed.infotexts[0] if processed.infotexts else ""
                processed.saved_paths.append(str(pipeline._save(target, grid, plan, 0, text, grid=True)))
        if processed.infotexts and engine.paths.params_txt is not None:
            image_files.write_params_txt(engine.paths.params_txt, processed.infotexts[0])


def _known(options: Any, values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if k in options}


def _save_plan(req: GenerationRequest, processed: Processed, opts: Any) -> Any:
    """What the pipeline's save step reads, rebuilt from a joined result (file names, tags)."""
    sampler, schedule = samplers.resolve_sampler(req.sampler_name, req.scheduler)
    return pipeline.Plan(
        request=req, sampler=sampler, schedule=schedule, schedule_label=samplers.infotext_schedule_label(sampler, schedule),
        clip_skip=int(req.clip_skip or opts.get("CLIP_stop_at_last_layers") or 1),
        all_prompts=processed.prompts, all_negative_prompts=processed.negative_prompts, cond_prompts=[],
        all_seeds=processed.seeds, all_subseeds=processed.subseeds, seed=processed.seed, subseed=processed.subseed)


def join_results(request: GenerationRequest, parts: list[Processed], *, interrupted: bool) -> Processed:
    """The parts of a split job as one job's result, in iteration order."""
    if not parts:
        return Processed(images=[], infotexts=[], seeds=[], subseeds=[], prompts=[], negative_prompts=[],
                         request=request, seed=-1, subseed=-1, info={"infotexts": [], "all_seeds": []},
                         interrupted=True)
    first = parts[0]
    info = dict(first.info)
    info.pop("replica", None)
    for key in CONCAT_INFO:
        info[key] = [x for p in parts for x in (p.info.get(key) or [])]
    warnings = list(dict.fromkeys(w for p in parts for w in p.warnings))
    info["warnings"] = warnings
    return Processed(
        images=[x for p in parts for x in p.images], infotexts=[x for p in parts for x in p.infotexts],
        seeds=[x for p in parts for x in p.seeds], subseeds=[x for p in parts for x in p.subseeds],
        prompts=[x for p in parts for x in p.prompts], negative_prompts=[x for p in parts for x in p.negative_prompts],
        request=request, seed=first.seed, subseed=first.subseed, info=info, warnings=warnings,
        index_of_first_image=first.index_of_first_image, interrupted=interrupted or any(p.interrupted for p in parts))


def rebuild_error(summary: dict[str, Any]) -> Exception:
    """A replica's error as the exception the doors know (a bad request stays a 422)."""
    if summary.get("kind") == "request":
        return RequestError(summary["field"], summary["message"])
    if summary.get("kind") == "ModelLoadError":
        from modules.engine.engine import ModelLoadError

        return ModelLoadError(summary["message"])
    return RuntimeError(f"{summary.get('kind')}: {summary.get('message')}")
