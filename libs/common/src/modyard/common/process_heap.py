"""A service process's heap once it is ready: start-up's objects frozen, freed memory returned.

Start-up (imports, settings, the app's routes and models, the first connections) leaves a few
hundred thousand long-lived objects in the collector's generations and a heap full of freed
blocks from what start-up built and dropped. :func:`settle_after_startup` runs once, when the
process is ready:

- ``gc.freeze()``: what start-up left moves to the permanent generation, so the later full
  collections (run on the event loop, in the middle of a request, as allocations pile up) no
  longer walk those objects again and again: a full collection's pause then scales with what
  requests keep alive, not with the size of the libraries. Frozen objects are never collected,
  which costs nothing here: they are the modules, classes and app the process keeps until it
  exits. No ``gc.collect()`` first: it would walk them all once more (~70 to 110 ms with the
  loop blocked, right when the service turns ready) to free the ~100 cyclic objects start-up
  left, a few kilobytes (measured: 74 to 158 objects).
- ``gc.set_threshold(10_000, 10, 10)``: a collection of the youngest generation every 10,000 net
  allocations instead of 700, so the older generations' collections, which run every 10 of the
  younger's, come 14 times less often. A request allocates hundreds of objects: at the default,
  a busy gateway ran a 1 to 2 ms middle collection several times a second and a 2 to 3 ms full
  one every ~0.6 s, each stalling every request in flight (the tail: its p99). What requests
  leave behind is almost all freed by reference counting, not by the collector, so the larger
  young generation holds little more memory.
- ``malloc_trim(0)`` (glibc only): CPython's freed arenas and the free blocks at the top of
  malloc's heaps stay in the process's RSS until glibc gives them back; trimming once returns what
  start-up freed (imports' temporary parse data, migrations' checks, pydantic's schema build).
  Where the C library has no ``malloc_trim`` (musl, macOS) it is skipped.

Only a process that serves the app does it (:func:`serving_this_process`, called by
:func:`~modyard.common.service_cli.run_server`): an app whose lifespan runs inside another process
(a test's ``in_process``) must leave that process's collector alone, or every object of it would
be kept for good, the test apps dropped later and their cycles included.
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Callable
from functools import cache

import structlog

log = structlog.get_logger(__name__)

_serving = False
#: The collector's thresholds for a serving process (see the module's docstring).
SERVING_GC_THRESHOLDS = (10_000, 10, 10)


def serving_this_process() -> None:
    """This process runs to serve the app: it settles its heap when ready."""
    global _serving
    _serving = True


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    # CDLL(None) is the process's own symbols, the C library among them; only glibc has
    # malloc_trim, and its absence (musl, macOS) is the only failure expected here.
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
        return trim
    except (AttributeError, OSError):
        return None


def return_freed_memory() -> bool:
    """Give the C library's free heap memory back to the system; False where it cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def settle_after_startup() -> None:
    """Freeze what start-up left, collect less often, give freed memory back (once, when the
    process is ready: each
    call would freeze the objects created since the last); nothing in a process that does not
    serve the app (see the module's docstring)."""
    if not _serving:
        return
    started = time.perf_counter()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)
    trimmed = return_freed_memory()
    log.info(
        "heap_settled",
        frozen=gc.get_freeze_count(),
        gc_thresholds=gc.get_threshold(),
        trimmed=trimmed,
        milliseconds=round((time.perf_counter() - started) * 1000, 1),
    )
