"""glibc malloc tuned for tensors allocated off the main thread.

The server runs every generation in a worker thread (FastAPI's thread pool, Gradio's workers). glibc gives such a
thread its own malloc arena, and those arenas hand the megabyte-sized activation buffers back to the kernel as
soon as they are freed, so the next UNet layer faults the same pages in again: measured on SD1.5 at 128 px
(diffusers' own pipeline, run once in the main thread and once in a worker thread of the same process), the
worker thread spent 6 s of system time per picture against 0.1 s, 1.2-2x the wall time. One arena, a fixed
32 MiB mmap threshold and a 512 MiB trim threshold keep freed buffers in the process for reuse, as the main
thread's arena already does; the worker then costs what the main thread costs (0.1 s system time).

The price: up to 512 MiB of freed heap stays mapped between generations, and threads share one malloc lock
(PyTorch's allocations are few and large, so it is not contended). ``SD_WEBUI_MALLOC_TUNING=0`` turns it off.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

# <malloc.h> parameter numbers (glibc)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENAS = 1
MMAP_THRESHOLD = 32 << 20  # glibc's upper limit for this parameter on 64-bit
TRIM_THRESHOLD = 512 << 20

_done: bool | None = None


def request_huge_pages(environ: dict | None = None) -> None:
    """Ask PyTorch's CPU allocator for transparent huge pages on its large buffers (``THP_MEM_ALLOC_ENABLE``).

    Buffers of 32 MiB and more (oneDNN's reordered conv weights, the VAE's activations) are mmapped at every
    allocation, and each 4 KiB page faults in on first touch: 3.6 million faults and 5.9 s of system time per
    128 px SD1.5 picture with ``--compile``, 1.3 million and 2.2 s without it. With huge pages (2 MiB) the same
    picture took 24 thousand faults and 1.5 s (``--compile``; 8.9 s -> 6.3-7.0 s wall). PyTorch reads the variable
    once, at its first allocation, so this must run before torch is imported; a value the user set is kept
    (``THP_MEM_ALLOC_ENABLE=0`` turns it off). Linux only; the kernel applies it where THP is "always" or "madvise"."""
    environ = os.environ if environ is None else environ
    if sys.platform.startswith("linux"):
        environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def tune_malloc() -> bool:
    """Apply the settings above once per process; False where there is no glibc (macOS, Windows, musl) or it is
    turned off. Call it before the first tensor is allocated in a worker thread."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("SD_WEBUI_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, ARENAS), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    if not ok:
        log.debug("mallopt refused a setting; malloc keeps its defaults for it")
    _done = ok
    return ok
