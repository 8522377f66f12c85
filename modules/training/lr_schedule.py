"""A1111's schedule syntax for the learning rate and the gradient-clipping value.

``"0.005:100, 1e-3:1000, 1e-5"`` means 0.005 until step 100, then 1e-3 until step 1000, then 1e-5 to the end.
A pair's step is where its value stops applying (exclusive); a value without a step, or with step ``-1``,
lasts to the end. Pairs that end at or before the step training starts from (a resumed file's) are skipped,
and the last end is cut at ``max_steps``.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ScheduleError", "StepSchedule", "parse_schedule"]


class ScheduleError(ValueError):
    """The schedule text is not ``value[:step], ...``. The message says which part is wrong."""


@dataclass(frozen=True)
class StepSchedule:
    """``(value, end_step)`` pieces in order; ``value_at(step)`` is the value the optimizer step ``step`` uses."""

    pieces: tuple[tuple[float, int], ...]
    max_steps: int

    def value_at(self, step: int) -> float:
        for value, end in self.pieces:
            if step < end:
                return value
        return self.pieces[-1][0]

    @property
    def end_step(self) -> int:
        """The step training stops at: the last piece's end (max_steps unless the schedule ends earlier)."""
        return self.pieces[-1][1]


def parse_schedule(text: str | float | int, max_steps: int, start_step: int = 0) -> StepSchedule:
    """Parse ``text`` (a number is a constant schedule). ScheduleError when it cannot be read or nothing of it
    lies after ``start_step``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError("the schedule is empty; write e.g. 0.005 or 0.005:100, 1e-3:1000, 1e-5")
    max_steps = int(max_steps)
    if max_steps < 1:
        raise ScheduleError(f"max steps must be at least 1, got {max_steps}")
    pieces: list[tuple[float, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        value_text, sep, step_text = part.partition(":")
        try:
            value = float(value_text)
        except ValueError:
            raise ScheduleError(f"{value_text.strip()!r} in {part!r} is not a number") from None
        if value != value or value < 0:
            raise ScheduleError(f"{part!r}: the value must be a number of at least 0")
        if not sep:
            pieces.append((value, max_steps))
            break
        try:
            end = int(step_text)
        except ValueError:
            raise ScheduleError(f"{step_text.strip()!r} in {part!r} is not a whole step number") from None
        if end == -1:
            pieces.append((value, max_steps))
            break
        if end <= start_step:
            continue  # already passed by the file training resumes from
        pieces.append((value, min(end, max_steps)))
        if end >= max_steps:
            break
    if not pieces:
        raise ScheduleError(f"nothing of the schedule {text!r} lies after step {start_step}")
    return StepSchedule(tuple(pieces), max_steps)
