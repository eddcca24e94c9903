"""Putting messages on the work queue, now or after a delay (through a TTL tier queue)."""

from __future__ import annotations

from modyard.common.bus.connection import Bus
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.topology import WORK_EXCHANGE, WORK_ROUTING_KEY, delay_queue
from modyard.runtime.failures import tier_for


async def send(bus: Bus, message: WorkMessage, *, delay_seconds: float = 0.0) -> None:
    body = message.model_dump_json().encode()
    if delay_seconds > 0:
        # The default exchange routes by queue name; the tier's TTL dead-letters it back to work.
        await bus.publish_message(
            body,
            exchange="",
            routing_key=delay_queue(tier_for(delay_seconds)),
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            message_type="modyard.runtime.work",
        )
        return
    await bus.publish_message(
        body,
        exchange=WORK_EXCHANGE,
        routing_key=WORK_ROUTING_KEY,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        message_type="modyard.runtime.work",
    )
