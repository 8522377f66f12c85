"""The front's job state, made from the replicas' reports: what /sdapi/v1/progress, /internal/progress and
the page read, with the same fields as one Engine's :class:`~modules.engine.job_state.JobState`.

Several jobs can run at once (one per replica). :meth:`view` gives one job's state (a split job's chunks
summed); the fields of the object itself mirror the oldest running job, which is what A1111's single-job
``/sdapi/v1/progress`` shows. Interrupt and skip go to the dispatcher, which sends them to the replicas.
"""
from __future__ import annotations

import io
import threading
from typing import Any, Callable

from modules.engine.job_state import JobState

MIRRORED = ("job", "job_no", "job_count", "job_timestamp", "sampling_step", "sampling_steps", "time_start",
            "textinfo", "id_task", "current_preview", "current_preview_step")


def chunk_task(job_id: str) -> str:
    """The front task a replica job belongs to (``task#2`` -> ``task``)."""
    return job_id.rsplit("#", 1)[0]


class ClusterJobState(JobState):
    def __init__(self, control: Callable[[str], None]) -> None:
        super().__init__()
        self._control = control
        self._views: dict[str, JobState] = {}
        self._order: list[str] = []  # running tasks, oldest first
        self._previews: dict[str, Any] = {}  # replica key -> (preview step, PIL image)
        self._views_lock = threading.Lock()

    # --- control: every running job (A1111's interrupt has no task id) ------------------------------
    def interrupt(self) -> None:
        self._control("interrupt")

    def skip(self) -> None:
        self._control("skip")

    # --- reading -----------------------------------------------------------------------------------
    def view(self, id_task: str | None) -> JobState:
        with self._views_lock:
            return self._views.get(id_task or "", self)

    def running_ids(self) -> list[str]:
        with self._views_lock:
            return list(self._order)

    def update(self, snapshots: dict[str, dict[str, Any]], jobs: dict[str, tuple[int, float, int]]) -> None:
        """New reports from the replicas. ``jobs``: each front task in flight -> (its n_iter, when it was
        accepted, iterations already finished by its chunks that are done)."""
        views: dict[str, JobState] = {}
        for key, snap in sorted(snapshots.items()):
            if snap.get("preview") is not None:
                from PIL import Image

                self._previews[key] = (snap["preview_step"], Image.open(io.BytesIO(snap["preview"])))
            job_id = snap.get("id_task")
            task = chunk_task(job_id) if job_id else None
            if task not in jobs:
                continue
            total, started, done = jobs[task]
            view = views.get(task)
            if view is None:
                view = views[task] = JobState()
                view.begin(snap.get("job") or "txt2img", total, task)
                view.time_start = started
                view.job_timestamp = snap.get("job_timestamp") or view.job_timestamp
                view.job_no = done
            view.job_no += int(snap.get("job_no") or 0)
            if snap.get("sampling_steps"):
                view.sampling_step, view.sampling_steps = snap["sampling_step"], snap["sampling_steps"]
            view.textinfo = snap.get("textinfo") or view.textinfo
            preview = self._previews.get(key)
            if preview is not None and snap.get("preview_step", -1) >= 0:
                view.current_preview_step, view.current_preview = preview
        order = sorted(views, key=lambda t: jobs[t][1])
        with self._views_lock:
            self._views, self._order = views, order
        self._mirror(views[order[0]] if order else None)

    def _mirror(self, view: JobState | None) -> None:
        if view is None:
            self.end()
            self.current_preview, self.current_preview_step = None, -1
            return
        for name in MIRRORED:
            setattr(self, name, getattr(view, name))

