"""Events every process of a service hears: a queue of the process's own on ``modyard.events``.

A service's ``<service>.events`` queue gives each event to one of its replicas (competing
consumers): right for work done once (a row written), wrong for what each process keeps in memory
(a cached copy to drop, a waiter to wake). :func:`process_queue` declares a queue for this process
alone (exclusive, deleted with its connection) bound to the event types it names, and hands each
event to ``on_event`` in every replica.

Nothing is acknowledged or redelivered: such a queue holds no work, only news. What a process can
miss is what is published while its connection is down (its queue goes with the connection, and
aio-pika declares it again, empty, when it reconnects), so ``on_reconnect`` runs then: the process
drops whatever that news could have been about.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from pydantic import ValidationError

from modyard.common.bus.connection import TopologyHook
from modyard.common.bus.envelope import CloudEvent
from modyard.common.bus.topology import EVENTS_EXCHANGE

log = structlog.get_logger(__name__)


def process_queue(
    prefix: str,
    bindings: Sequence[str],
    on_event: Callable[[CloudEvent], None],
    *,
    on_reconnect: Callable[[], None] | None = None,
) -> TopologyHook:
    """A topology hook (:meth:`~modyard.common.bus.connection.Bus.add_topology`) declaring
    ``<prefix>.<random>``, bound to ``bindings`` (topic patterns) on the events exchange, whose
    events go to ``on_event`` in this process; ``on_reconnect`` runs after each reconnect."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            event = CloudEvent.model_validate_json(message.body)
        except ValidationError:
            log.warning("process_queue_unreadable", queue=prefix, message_id=message.message_id)
            return
        on_event(event)

    async def declare(
        _channel: AbstractRobustChannel, connection: AbstractRobustConnection
    ) -> dict[str, AbstractExchange]:
        # A channel of its own: aio-pika restores it, with the queue, its bindings and the
        # consumer, after a reconnect (the hook itself runs once per Bus connection).
        channel = await connection.channel()
        queue = await channel.declare_queue(
            f"{prefix}.{uuid.uuid4().hex[:12]}", exclusive=True, auto_delete=True
        )
        for pattern in bindings:
            await queue.bind(EVENTS_EXCHANGE, routing_key=pattern)
        await queue.consume(on_message, no_ack=True)
        if on_reconnect is not None:
            callback = on_reconnect

            def reconnected(*_: Any) -> None:
                callback()

            connection.reconnect_callbacks.add(reconnected)
        return {}

    return declare
