"""Which generation tasks are waiting, running or done (A1111's pending/finished task ids).

Fed by the doors that start generations (the API here; the UI can use the same object) and read by
/internal/progress and /internal/pending-tasks. The running task is the engine's ``state.id_task``.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Iterable


class TaskTracker:
    def __init__(self, keep_finished: int = 16) -> None:
        self._lock = threading.Lock()
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._finished: deque[str] = deque(maxlen=keep_finished)

    def add(self, task_id: str) -> None:
        with self._lock:
            self._pending[task_id] = time.time()

    def finish(self, task_id: str) -> None:
        with self._lock:
            self._pending.pop(task_id, None)
            self._finished.append(task_id)

    def pending(self, running: str | Iterable[str] | None = None) -> list[str]:
        """Ids still waiting, oldest first (the running one, or ones, left out)."""
        skip = {running} if isinstance(running, str) or running is None else set(running)
        with self._lock:
            return [t for t in self._pending if t not in skip]

    def is_finished(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._finished
