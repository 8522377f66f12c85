"""Which generation tasks are waiting, running or done (A1111's pending/finished task ids), one tracker per Engine.

Fed by the doors that start generations (the API, the page) and by extensions through A1111's
``modules.progress`` (``add_task_to_queue`` / ``start_task`` / ``finish_task``, for work they queue
themselves); read by /internal/progress and /internal/pending-tasks. A generation's running task is the job
state's ``id_task``; ``current`` is the one an extension said it started (A1111's ``progress.current_task``).
"""
from __future__ import annotations

import random
import string
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Iterable


def create_task_id(task_type: str) -> str:
    """A1111's task ids: ``task(txt2img-ABC1234)``."""
    return f"task({task_type}-{''.join(random.choices(string.ascii_uppercase + string.digits, k=7))})"


class TaskTracker:
    def __init__(self, keep_finished: int = 16, keep_results: int = 2) -> None:
        self._lock = threading.Lock()
        # Live containers: A1111 extensions read and clear ``progress.pending_tasks`` / ``finished_tasks``.
        self.pending_map: OrderedDict[str, float] = OrderedDict()
        self.finished: deque[str] = deque(maxlen=keep_finished)
        self.results: deque[tuple[str, Any]] = deque(maxlen=keep_results)
        self.current: str | None = None

    def add(self, task_id: str) -> None:
        with self._lock:
            self.pending_map[task_id] = time.time()

    def start(self, task_id: str | None) -> None:
        with self._lock:
            self.current = task_id
            if task_id is not None:
                self.pending_map.pop(task_id, None)

    def finish(self, task_id: str | None) -> None:
        with self._lock:
            if task_id is None:
                return
            if self.current == task_id:
                self.current = None
            self.pending_map.pop(task_id, None)
            self.finished.append(task_id)

    def record_result(self, task_id: str | None, result: Any) -> None:
        if task_id is None:
            return
        with self._lock:
            self.results.append((task_id, result))

    def result_of(self, task_id: str) -> Any:
        with self._lock:
            return next((res for tid, res in self.results if tid == task_id), None)

    def pending(self, running: str | Iterable[str] | None = None) -> list[str]:
        """Ids still waiting, oldest first (the running one, or ones, left out)."""
        skip = {running} if isinstance(running, str) or running is None else set(running)
        with self._lock:
            return [t for t in self.pending_map if t not in skip and t != self.current]

    def is_running(self, task_id: str | None) -> bool:
        return task_id is not None and task_id == self.current

    def is_finished(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self.finished
