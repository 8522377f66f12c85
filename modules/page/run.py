"""Running one generation for the page: the engine works in a thread, the page sees images as they finish.

This is the UI door's only contact with generation: it hands a GenerationRequest to ``ScriptHost.generate``
(through the script layer, the same call the API makes) and reports progress from the engine's JobState. The progress
bar and live preview themselves are polled by the browser from ``/internal/progress``.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

from modules.core.request import GenerationRequest, Processed, RequestError

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


@dataclass
class RunUpdate:
    """What the page shows at one moment of a run."""

    images: list[Any]
    infotexts: list[str]
    done: bool = False
    processed: Processed | None = None
    error: str | None = None  # one readable line; the page shows it and keeps working
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def error_message(exc: BaseException) -> str:
    """One line for the page: the field and reason for bad input, the type and message otherwise."""
    if isinstance(exc, RequestError):
        return f"{exc.field}: {exc.message}"
    text = str(exc).strip() or type(exc).__name__
    return text if type(exc).__name__ in ("ModelLoadError", "NetworkLoadError", "CheckpointLoadError") \
        else f"{type(exc).__name__}: {text}"


def run_generation(host: "ScriptHost", request: GenerationRequest, *, tasks: Any = None,
                   poll_seconds: float = POLL_SECONDS, work: Callable[[], Processed] | None = None
                   ) -> Iterator[RunUpdate]:
    """Yield a RunUpdate whenever more images are finished, then a final one with ``done=True``.

    The request needs an ``id_task``: it is how the partial results and the browser's progress polling
    find this run among others queued on the same engine. ``work``: what runs instead of
    ``host.generate(request)`` (img2img's Batch: one generation per picture, under the same id).
    """
    if not request.id_task:
        raise ValueError("request.id_task: the page must give each run an id")
    outcome: dict[str, Any] = {}
    finished = threading.Event()
    started = time.perf_counter()

    run = work or (lambda: host.generate(request))

    def worker() -> None:
        try:
            outcome["processed"] = run()
        except BaseException as exc:  # noqa: BLE001 - reported to the page, never lost in a thread
            outcome["error"] = exc
        finally:
            finished.set()

    if tasks is not None:
        tasks.add(request.id_task)
    thread = threading.Thread(target=worker, name=f"generate {request.id_task}", daemon=True)
    thread.start()
    shown = 0
    try:
        while not finished.wait(poll_seconds):
            results = host.engine.state.results_for(request.id_task)
            if len(results) > shown:
                shown = len(results)
                yield RunUpdate([r[0] for r in results], [r[1] for r in results],
                                seconds=time.perf_counter() - started)
    finally:
        if tasks is not None:
            if finished.is_set():
                tasks.finish(request.id_task)
            else:  # the page went away mid-run: the run goes on, and is marked finished when it is
                threading.Thread(target=lambda: (finished.wait(), tasks.finish(request.id_task)), daemon=True).start()
    seconds = time.perf_counter() - started
    exc = outcome.get("error")
    if exc is not None:
        if not isinstance(exc, (RequestError, ValueError)):
            log.error("generation %s failed", request.id_task, exc_info=exc)
        yield RunUpdate([], [], done=True, error=error_message(exc), seconds=seconds)
        return
    processed: Processed = outcome["processed"]
    yield RunUpdate(list(processed.images), list(processed.infotexts), done=True, processed=processed,
                    seconds=seconds, warnings=list(processed.warnings))


def gallery_items(engine: "Engine", processed: Processed) -> list[tuple[Any, str, int, int]]:
    """``[(image, infotext, seed, subseed)]`` as the gallery shows a finished run: with "Show grid in gallery"
    (``return_grid``) a batch of several images gets its grid first, as A1111's gallery does. A result that
    already starts with grids (X/Y/Z plot, prompt matrix) is shown as it is."""
    images = list(processed.images)
    infotexts = list(processed.infotexts) + [""] * (len(images) - len(processed.infotexts))
    seeds = list(processed.seeds)
    subseeds = list(processed.subseeds)
    if processed.index_of_first_image:  # grids first: seeds belong to the images after them
        pad = processed.index_of_first_image
        seeds = [processed.seed] * pad + seeds
        subseeds = [processed.subseed] * pad + subseeds
    seeds += [processed.seed] * (len(images) - len(seeds))
    subseeds += [processed.subseed] * (len(images) - len(subseeds))
    items = list(zip(images, infotexts, seeds, subseeds))
    if len(images) > 1 and not processed.index_of_first_image and engine.options.get("return_grid"):
        from modules.core import image_files

        grid = image_files.image_grid(images)
        grid.info["parameters"] = infotexts[0]
        items.insert(0, (grid, infotexts[0], seeds[0], subseeds[0]))
    return items
