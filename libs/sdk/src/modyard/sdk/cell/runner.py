"""``modyard cell run``: the cell SDK's runner (modyard.cell.runner) with the platform's tracing.

The cell SDK depends on no tracing library; here, where modyard.common is installed, a worker
continues the caller's trace (the runtime's node, the gateway's request) when the ``OTEL_*``
variables ask for traces (modyard.common.observability.tracing).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modyard.cell import runner
from modyard.cell.runner import Runnable, load_target
from modyard.cell.wire import Delivery
from modyard.cell.worker import Worker, WorkerOptions
from modyard.common.observability import tracing

__all__ = ["Runnable", "load_target", "run_command", "serve"]


def run_command(target: str, credentials: Path, *options: str) -> list[str]:
    """The command line of ``modyard cell run <target> --credentials <file>`` in this Python
    environment (tests and benchmarks start cells as processes of their own with it)."""
    executable = Path(sys.executable).parent / "modyard"
    return [str(executable), "cell", "run", target, "--credentials", str(credentials), *options]


@contextmanager
def _consuming(queue: str, message: Delivery, worker: str) -> Iterator[None]:
    with tracing.consuming(
        queue,
        message.properties.headers,
        routing_key=message.routing_key,
        message_id=message.properties.message_id,
        redelivered=message.redelivered,
        attributes={"modyard.worker": worker},
    ):
        yield


async def serve(runnable: Runnable, options: WorkerOptions) -> Worker:
    """:func:`modyard.cell.runner.serve`, traced when the environment asks for traces."""
    if tracing.configure_tracing(f"worker-{runnable.name}"):
        options = dataclasses.replace(options, trace=_consuming)
    try:
        return await runner.serve(runnable, options)
    finally:
        tracing.shutdown()
