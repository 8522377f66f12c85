"""The control board: one small Ray actor between the front and the replicas.

Each replica reports a snapshot of its job state a few times a second and receives, in the same call, the
interrupt or skip meant for the job it is running. Keyed by the job's id (``task#chunk``), so a command
reaches the replica running that job wherever Serve placed it, and never another one.
"""
from __future__ import annotations

import time
from typing import Any


class ControlBoard:
    def __init__(self) -> None:
        self._snapshots: dict[str, dict[str, Any]] = {}  # replica key -> its last snapshot
        self._commands: dict[str, str] = {}  # job id -> "interrupt" | "skip", until delivered or forgotten

    def exchange(self, replica: str, snapshot: dict[str, Any]) -> list[str]:
        """Store ``replica``'s snapshot; return the commands for the job it is running now."""
        snapshot["seen"] = time.time()
        self._snapshots[replica] = snapshot
        job = snapshot.get("id_task")
        if job and job in self._commands:
            return [self._commands.pop(job)]
        return []

    def command(self, jobs: list[str], action: str) -> None:
        for job in jobs:
            if self._commands.get(job) != "interrupt":  # an interrupt is not weakened to a skip
                self._commands[job] = action

    def forget(self, jobs: list[str]) -> None:
        for job in jobs:
            self._commands.pop(job, None)

    def snapshots(self, max_age: float = 5.0) -> dict[str, dict[str, Any]]:
        """Snapshots of the replicas heard from in the last ``max_age`` seconds (a dead one drops out)."""
        now = time.time()
        return {k: v for k, v in self._snapshots.items() if now - v["seen"] <= max_age}
