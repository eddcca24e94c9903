"""Once ready, a process's start-up objects are frozen out of the collector's walks and its freed
heap memory is given back (modyard.common.process_heap)."""

from __future__ import annotations

import subprocess
import sys


def test_settling_freezes_what_start_up_left_and_logs_it() -> None:
    # In a child: the freeze is process-wide and must not leak into the test session's collector.
    code = (
        "import gc, modyard.registry.app as app\n"
        "from structlog.testing import capture_logs\n"
        "from modyard.common.process_heap import serving_this_process, settle_after_startup\n"
        "app.create_app()\n"
        "assert gc.get_freeze_count() == 0\n"
        "serving_this_process()\n"
        "with capture_logs() as logs:\n"
        "    settle_after_startup()\n"
        "frozen = gc.get_freeze_count()\n"
        "oldest = len(gc.get_objects(2))\n"
        "print(frozen, logs[0]['event'], logs[0]['frozen'], logs[0]['trimmed'], oldest,\n"
        "      ','.join(map(str, gc.get_threshold())))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    frozen, event, logged_frozen, trimmed, oldest_generation, thresholds = out
    # The app and its libraries: tens of thousands of objects, none left in the oldest generation.
    assert int(frozen) > 50_000
    assert event == "heap_settled"
    assert int(logged_frozen) > 50_000
    # This image's C library is glibc: the freed memory was given back.
    assert trimmed == "True"
    # Start-up's objects left the oldest generation (a full collection no longer walks them).
    assert int(oldest_generation) < 100
    # A serving process collects its young generation every 10,000 allocations, not 700.
    assert thresholds == "10000,10,10"


def test_returning_freed_memory_is_harmless_to_repeat() -> None:
    from modyard.common.process_heap import return_freed_memory

    assert return_freed_memory() is True
    assert return_freed_memory() is True


def test_an_app_started_inside_another_process_leaves_its_collector_alone() -> None:
    # A test's in-process app runs the same lifespan: freezing there would keep the test
    # process's objects (and every app it drops later) for good.
    code = (
        "import gc\n"
        "from modyard.common.process_heap import settle_after_startup\n"
        "settle_after_startup()\n"
        "print(gc.get_freeze_count(), ','.join(map(str, gc.get_threshold())))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()
    assert out == "0 700,10,10"
