"""Queue depth and consumers of the queues a service works from, for the dashboards and the
"queue without consumers" and "backlog growing" alerts.

Each service looks at its own queues (its events queue and dead letters, and what it registered
with :meth:`Bus.observe_queue`: the runtime's work, delay and dead-letter queues) with a passive
declare every ``interval`` seconds: one AMQP round trip per queue, nothing on the hot path, and no
management API (whose user may see more than the service should). Queues of cells and module
workers are not listed: one per installation would be unbounded label values (the broker's own
``rabbitmq_prometheus`` plugin covers them, per queue, where an operator wants that).
"""

from __future__ import annotations

import asyncio

import structlog

from modyard.common.bus.connection import Bus
from modyard.common.observability.metrics import QUEUE_CONSUMERS, QUEUE_MESSAGES

log = structlog.get_logger(__name__)


async def watch_queues(bus: Bus, service: str, *, interval: float = 15.0) -> None:
    while True:
        await bus.wait_ready()
        for name in bus.observed_queues():
            counts = await bus.queue_counts(name)
            if counts is None:
                continue
            QUEUE_MESSAGES.labels(service, name).set(counts[0])
            QUEUE_CONSUMERS.labels(service, name).set(counts[1])
        await asyncio.sleep(interval)
