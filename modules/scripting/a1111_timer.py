"""A1111's ``Timer``: named durations, summed, for log lines like "Startup time: 4.2s (load scripts: 1.0s)"."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class Timer:
    def __init__(self, print_log: bool = False) -> None:
        self.start = time.time()
        self.records: dict[str, float] = {}
        self.total = 0.0
        self.base_category = ""
        self.print_log = print_log

    def elapsed(self) -> float:
        end = time.time()
        res = end - self.start
        self.start = end
        return res

    def add_time_to_record(self, category: str, amount: float) -> None:
        self.records[category] = self.records.get(category, 0.0) + amount

    def record(self, category: str, extra_time: float = 0, disable_log: bool = False) -> None:
        e = self.elapsed()
        self.add_time_to_record(self.base_category + category, e + extra_time)
        self.total += e + extra_time

    @contextmanager
    def subcategory(self, name: str) -> Iterator[None]:
        self.elapsed()
        previous = self.base_category
        self.base_category = previous + name + "/"
        try:
            yield
        finally:
            self.base_category = previous
            self.record(name)

    def summary(self) -> str:
        parts = [f"{k}: {v:.1f}s" for k, v in self.records.items() if v >= 0.1 and "/" not in k]
        return f"{self.total:.1f}s" + (f" ({', '.join(parts)})" if parts else "")

    def dump(self) -> dict:
        return {"total": self.total, "records": dict(self.records)}

    def reset(self) -> None:
        self.__init__()


startup_timer = Timer()
startup_record = None
