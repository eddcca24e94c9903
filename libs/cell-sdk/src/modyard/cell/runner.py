"""Running a cell or a module worker until SIGTERM/SIGINT, then stopping gracefully."""

from __future__ import annotations

import asyncio
import gc
import importlib
import signal
import sys
from pathlib import Path

from modyard.cell.cell import Cell
from modyard.cell.module import ModuleWorker
from modyard.cell.worker import Worker, WorkerOptions

Runnable = Cell | ModuleWorker


def load_target(target: str) -> Runnable:
    """``package.module:attribute`` → the :class:`Cell` or :class:`ModuleWorker` it names.

    The current directory is importable, as with ``python -m``.
    """
    module_name, separator, attribute = target.partition(":")
    if not separator or not module_name or not attribute:
        raise ValueError(f"{target!r} is not 'module:attribute' (e.g. 'mycell:cell')")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    module = importlib.import_module(module_name)
    found = getattr(module, attribute, None)
    if not isinstance(found, Cell | ModuleWorker):
        raise ValueError(f"{target} is not a Cell or a ModuleWorker (found {type(found).__name__})")
    return found


async def serve(runnable: Runnable, options: WorkerOptions) -> Worker:
    """Start the worker and stop it gracefully on SIGTERM or SIGINT; returns once stopped."""
    worker = runnable.worker(options)
    await worker.start()
    # What is loaded now lives as long as the process: out of the collector's full passes.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def request_stop() -> None:
        if not stopping:
            stopping.append(loop.create_task(worker.stop()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop)
    try:
        await worker.wait_stopped()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return worker
