"""The Ray Serve deployment: one Engine, with its script layer, per replica (one per GPU, or a CPU process).

Imported only in cluster mode (it imports ``ray``). A replica runs one job at a time (the deployment's
``max_ongoing_requests`` is 1, so waiting jobs queue in front of the replicas, not inside one). The checkpoint
a request names is its Serve *multiplexed model id*: Serve routes the request to a replica that has that
checkpoint loaded when one is free, and :meth:`EngineReplica.load_model` loads it otherwise, between jobs, on
this replica only. Nothing is saved here: the front writes every output once (:mod:`.dispatch`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import ray
from ray import serve

from modules.core.request import GenerationRequest, RequestError

log = logging.getLogger(__name__)

REPORT_PERIOD_S = 0.2
BOARD_TIMEOUT_S = 2.0


def build_replica_engine(args: Any, repo_root: Path) -> Any:
    """An Engine like the front's, but it never writes the settings file or params.txt (the front does)."""
    from modules.engine.devices import DeviceConfig
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost
    from modules.settings.options import Options
    from modules.settings.paths import Paths

    paths = Paths.from_args(args, repo_root)
    if getattr(paths, "params_txt", None) is not None:
        paths = dataclasses.replace(paths, params_txt=None)
    options = Options(paths.config_file)
    options.path = None
    engine = Engine(args=args, paths=paths, options=options, devices=DeviceConfig.from_args(args))
    engine.refresh_checkpoints()
    engine.available_checkpoints()
    ScriptHost.for_engine(engine).load()
    return engine


def error_summary(exc: BaseException) -> dict[str, Any]:
    """A failed job's error as plain values (exception classes do not always survive pickling)."""
    if isinstance(exc, RequestError):
        return {"kind": "request", "field": exc.field, "message": exc.message}
    return {"kind": type(exc).__name__, "message": str(exc)}


@serve.deployment
class EngineReplica:
    def __init__(self, args: Any, repo_root: str, board: Any, torch_threads: int) -> None:
        import torch

        if torch_threads > 0:
            torch.set_num_threads(torch_threads)
        self.engine = build_replica_engine(args, Path(repo_root))
        from modules.scripting.host import ScriptHost

        self.host = ScriptHost.for_engine(self.engine)
        self.board = board
        self.key = f"{socket.gethostname()}:{os.getpid()}"
        self._preview_sent: tuple[int, int] | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._report_loop, daemon=True, name="replica-report").start()

    # --- models ----------------------------------------------------------------------------------
    @serve.multiplexed(max_num_models_per_replica=1)
    async def load_model(self, model_id: str) -> str:
        await asyncio.to_thread(self._load, model_id)
        return model_id

    def _load(self, model_id: str) -> None:
        engine = self.engine
        with engine.exclusive(), engine.options.scoped({"sd_model_checkpoint": model_id} if model_id else {}):
            engine.ensure_model()
        self.host.check_model_loaded()

    # --- jobs --------------------------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> tuple[str, Any]:
        await self.load_model(serve.get_multiplexed_model_id())
        return await asyncio.to_thread(self._generate, request)

    def _generate(self, request: GenerationRequest) -> tuple[str, Any]:
        try:
            processed = self.host.generate(request)
        except Exception as exc:  # the front raises it again for the door that asked
            log.warning("job %s failed: %s", request.id_task, exc)
            return "error", error_summary(exc)
        processed.info["replica"] = self.key
        return "ok", processed

    def identity(self) -> dict[str, Any]:
        return {"key": self.key, "pid": os.getpid(), "model_generation": self.engine.model_generation}

    # --- progress and control ----------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        state = self.engine.state
        info = self.engine.checkpoint_info
        snap = {"pid": os.getpid(), "id_task": state.id_task, "job": state.job, "job_no": state.job_no,
                "job_count": state.job_count, "job_timestamp": state.job_timestamp,
                "sampling_step": state.sampling_step, "sampling_steps": state.sampling_steps,
                "time_start": state.time_start, "textinfo": state.textinfo, "interrupted": state.interrupted,
                "skipped": state.skipped, "model": getattr(info, "title", None),
                "model_generation": self.engine.model_generation, "preview": None, "preview_step": -1}
        preview = state.current_preview
        if preview is not None and state.id_task:
            mark = (state.job_no, state.current_preview_step)
            snap["preview_step"] = state.current_preview_step
            if mark != self._preview_sent:  # a preview travels once
                buf = io.BytesIO()
                preview.save(buf, format="PNG")
                snap["preview"] = buf.getvalue()
                self._preview_sent = mark
        return snap

    def _report_loop(self) -> None:
        while not self._stop.wait(REPORT_PERIOD_S):
            try:
                commands = ray.get(self.board.exchange.remote(self.key, self._snapshot()), timeout=BOARD_TIMEOUT_S)
            except Exception:  # the board is gone or slow: keep working, report again later
                continue
            for action in commands:
                if action == "interrupt":
                    self.engine.state.interrupt()
                elif action == "skip":
                    self.engine.state.skip()

    def __del__(self) -> None:
        self._stop.set()
