"""A1111's ``errors.report`` / ``errors.display``: an extension's error written to the log with its trace."""
from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, Callable

log = logging.getLogger("extensions")
_shown: set[str] = set()


def report(message: str, *, exc_info: bool = False) -> None:
    log.error("%s%s", message, "\n" + traceback.format_exc() if exc_info and sys.exc_info()[0] else "")


def display(e: BaseException, task: str, *, full_traceback: bool = False) -> None:
    log.error("%s: %s: %s\n%s", task, type(e).__name__, e,
              "".join(traceback.format_exception(type(e), e, e.__traceback__)))


def display_once(e: BaseException, task: str) -> None:
    if task in _shown:
        return
    _shown.add(task)
    display(e, task)


def print_error_explanation(message: str) -> None:
    log.error("%s", message.strip())


def run(code: Callable[[], Any], task: str) -> None:
    try:
        code()
    except Exception as e:  # noqa: BLE001 - A1111's helper reports and goes on
        display(e, task)
