"""A1111's ``modules.progress``: task ids queued, started and finished by extensions, and the progress models. A
thin facade; the code lives in ``modules.scripting.a1111_progress`` (``current_task``, ``pending_tasks``,
``finished_tasks``, ``recorded_results`` are read from the running Engine)."""
from modules.scripting.a1111_progress import (  # noqa: F401
    create_task_id, add_task_to_queue, start_task, finish_task, record_results, restore_progress,
    get_pending_tasks, PendingTasksResponse, ProgressRequest, ProgressResponse, RESOLVERS as _RESOLVERS,
)
from modules.scripting import runtime as _runtime


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.progress' has no attribute {name!r}")
    return resolver(_runtime.current())
