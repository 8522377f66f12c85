"""What A1111's ``modules.progress`` holds, over the running Engine's task tracker (``engine.tasks``) and job state.

Extensions that queue work of their own (agent-scheduler, video extensions) call ``add_task_to_queue(id)``, then
``start_task(id)`` inside ``call_queue.queue_lock`` and ``finish_task(id)``; the page's progress bar and
/internal/progress then show their task as queued, running and done exactly like a generation's.
``current_task``, ``pending_tasks``, ``finished_tasks`` and ``recorded_results`` are read from the tracker (live
containers, as A1111's module globals are)."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from modules.engine.task_ids import create_task_id  # noqa: F401 - A1111's progress.create_task_id
from modules.scripting import runtime


def _tasks() -> Any:
    return runtime.current().tasks


def add_task_to_queue(id_job: str, job_info: Any = None) -> None:
    _tasks().add(id_job)


def start_task(id_task: str | None) -> None:
    _tasks().start(id_task)


def finish_task(id_task: str | None) -> None:
    _tasks().finish(id_task)


def record_results(id_task: str | None, res: Any) -> None:
    _tasks().record_result(id_task, res)


def restore_progress(id_task: str) -> Any:
    """The result recorded for ``id_task`` (A1111 keeps the last two), or None."""
    return _tasks().result_of(id_task)


class PendingTasksResponse(BaseModel):
    size: int = Field(title="Pending task size")
    tasks: list[str] = Field(title="Pending task ids")


class ProgressRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    id_task: str | None = Field(default=None, title="Task ID", description="id of the task to get progress for")
    id_live_preview: int = Field(default=-1, title="Live preview image ID")
    live_preview: bool = Field(default=True, title="Include live preview")


class ProgressResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    active: bool = Field(title="Whether the task is being worked on right now")
    queued: bool = Field(title="Whether the task is in queue")
    completed: bool = Field(title="Whether the task has already finished")
    progress: float | None = Field(default=None, title="Progress", description="from 0 to 1")
    eta: float | None = Field(default=None, title="ETA in secs")
    live_preview: str | None = Field(default=None, title="Live preview image")
    id_live_preview: int | None = Field(default=None, title="Live preview image ID")
    textinfo: str | None = Field(default=None, title="Info text")


def get_pending_tasks() -> PendingTasksResponse:
    engine = runtime.current()
    pending = engine.tasks.pending(engine.state.running_ids())
    return PendingTasksResponse(size=len(pending), tasks=pending)


RESOLVERS: dict[str, Callable[[Any], Any]] = {
    "current_task": lambda e: e.tasks.current,
    "pending_tasks": lambda e: e.tasks.pending_map,
    "finished_tasks": lambda e: e.tasks.finished,
    "recorded_results": lambda e: e.tasks.results,
}
