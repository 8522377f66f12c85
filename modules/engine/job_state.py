"""The state of the running generation job, readable by the UI and the API, and the queue.

One generation runs at a time; others wait in arrival order (a ticket lock, since a plain
threading.Lock does not promise FIFO order).
"""
from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator


class GenerationInterrupted(Exception):
    """Raised inside the sampling loop when the user pressed Interrupt or Skip."""

    def __init__(self, skipped: bool) -> None:
        super().__init__("skipped" if skipped else "interrupted")
        self.skipped = skipped


class FifoLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._serving = 0
        self._waiting: list[int] = []

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            while ticket != self._serving:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._waiting.remove(ticket)
                self._serving += 1
                self._cond.notify_all()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._waiting)


@dataclass
class JobState:
    job: str = ""
    job_no: int = 0
    job_count: int = 0
    job_timestamp: str = "0"
    sampling_step: int = 0
    sampling_steps: int = 0
    interrupted: bool = False
    skipped: bool = False
    stopping_generation: bool = False
    closing: bool = False  # the server is shutting down (see shutdown())
    time_start: float | None = None
    textinfo: str | None = None
    id_task: str | None = None
    current_preview: Any = None  # PIL image of the live preview, or None
    current_preview_step: int = -1
    # (image, infotext) of each image finished in the current job, so a door can show them before the end.
    results: list = field(default_factory=list)
    queue: FifoLock = field(default_factory=FifoLock)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- lifecycle -------------------------------------------------------
    def begin(self, job: str, job_count: int, id_task: str | None = None) -> None:
        with self._lock:
            self.job = job
            self.job_no = 0
            self.job_count = job_count
            self.job_timestamp = time.strftime("%Y%m%d%H%M%S")
            self.sampling_step = 0
            self.sampling_steps = 0
            self.interrupted = self.closing  # after shutdown() every job stops at its first step
            self.skipped = False
            self.stopping_generation = False
            self.time_start = time.time()
            self.textinfo = None
            self.id_task = id_task
            self.current_preview = None
            self.current_preview_step = -1
            self.results = []

    def end(self) -> None:
        with self._lock:
            self.job = ""
            self.job_count = 0
            self.job_no = 0
            self.sampling_step = 0
            self.sampling_steps = 0
            self.time_start = None
            self.id_task = None

    def next_job(self) -> None:
        with self._lock:
            self.job_no += 1
            self.sampling_step = 0
            self.skipped = False

    def add_result(self, image: Any, infotext: str) -> None:
        with self._lock:
            self.results = [*self.results, (image, infotext)]  # a new list: readers hold the old one safely

    def results_for(self, id_task: str | None) -> list:
        """The finished images of the running job if it is `id_task`'s, else []."""
        with self._lock:
            return list(self.results) if id_task is not None and self.id_task == id_task else []

    def set_step(self, step: int, total: int) -> None:
        self.sampling_step = step
        self.sampling_steps = total

    # --- control ---------------------------------------------------------
    def interrupt(self) -> None:
        self.interrupted = True

    def shutdown(self) -> None:
        """The server is stopping: interrupt the running job and every job that starts from now on."""
        self.closing = True
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def check(self) -> None:
        """Called once per sampler step: that is how interrupt/skip act within one step."""
        if self.interrupted:
            raise GenerationInterrupted(skipped=False)
        if self.skipped:
            raise GenerationInterrupted(skipped=True)

    # --- reading ---------------------------------------------------------
    def view(self, id_task: str | None) -> "JobState":
        """The state of the job running ``id_task`` (one Engine runs one job: this state itself)."""
        return self

    def running_ids(self) -> list[str]:
        """Ids of the jobs running now (cluster mode runs several)."""
        task = self.id_task
        return [task] if task else []

    @property
    def active(self) -> bool:
        return self.time_start is not None

    def progress(self) -> tuple[float, float]:
        """(progress 0..1, eta seconds) with A1111's formula."""
        if self.job_count == 0 or self.time_start is None:
            return 0.0, 0.0
        progress = 0.01 + self.job_no / self.job_count
        if self.sampling_steps > 0:
            progress += (1 / self.job_count) * (self.sampling_step / self.sampling_steps)
        progress = min(progress, 1.0)
        elapsed = time.time() - self.time_start
        eta = elapsed / progress - elapsed if progress > 0 else 0.0
        return progress, eta

    def dict(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "interrupted": self.interrupted,
            "stopping_generation": self.stopping_generation,
            "job": self.job,
            "job_count": self.job_count,
            "job_timestamp": self.job_timestamp,
            "job_no": self.job_no,
            "sampling_step": self.sampling_step,
            "sampling_steps": self.sampling_steps,
        }
