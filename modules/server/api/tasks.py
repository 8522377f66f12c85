"""The task ids the API reports (pending, running, done): the Engine's ``TaskTracker`` (``modules.engine.task_ids``),
shared with A1111's ``modules.progress`` that extensions call."""
from modules.engine.task_ids import TaskTracker, create_task_id  # noqa: F401
