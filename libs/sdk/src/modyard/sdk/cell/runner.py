"""Running a cell or a module worker until SIGTERM/SIGINT, then stopping gracefully."""

from __future__ import annotations

import asyncio
import gc
import importlib
import signal
import sys
from pathlib import Path

from modyard.common.observability import tracing
from modyard.sdk.cell.cell import Cell
from modyard.sdk.cell.module import ModuleWorker
from modyard.sdk.cell.worker import Worker, WorkerOptions

Runnable = Cell | ModuleWorker


def run_command(target: str, credentials: Path, *options: str) -> list[str]:
    """The command line of ``modyard cell run <target> --credentials <file>`` in this Python
    environment (tests and benchmarks start cells as processes of their own with it)."""
    executable = Path(sys.executable).parent / "modyard"
    return [str(executable), "cell", "run", target, "--credentials", str(credentials), *options]


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
    # Off unless the OTEL_* variables ask for traces (modyard.common.observability.tracing).
    tracing.configure_tracing(f"worker-{runnable.name}")
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
        tracing.shutdown()
    return worker
