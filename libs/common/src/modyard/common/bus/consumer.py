"""Idempotent event consumption.

Every message on a service's queue is handled in one database transaction that also records, for
each handler, the event id under a unique key ``(consumer, event_id)``. A redelivered or
re-published event finds its id already recorded and is acknowledged without running the handler
again; the acknowledgement is sent only after the commit, so a crash in between means a
redelivery, never a loss.

Failures are sorted by cause:
- a message that is not a valid CloudEvent can never succeed: it is rejected to the dead-letter
  queue at once;
- the database being unreachable is not the message's fault: the message is held and retried with
  backoff, without counting towards the queue's ``delivery-limit``;
- a handler error is requeued; after ``delivery-limit`` deliveries the broker dead-letters it;
- a handler that raises :class:`EventRefused` knows the event can never succeed (another
  service answered it with a 4xx): it is dead-lettered at once, logged with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.backoff import Backoff
from modyard.common.bus import topology
from modyard.common.bus.connection import QueueConsumer
from modyard.common.bus.envelope import CloudEvent, routing_key_matches
from modyard.common.db.availability import is_database_unavailable
from modyard.common.db.database import Database
from modyard.common.db.messaging_tables import processed_events
from modyard.common.observability import tracing
from modyard.common.observability.metrics import EVENTS_CONSUMED
from modyard.common.request_context import bound_context

log = structlog.get_logger(__name__)


class EventRefused(Exception):
    """The event can never be handled (redelivering it would meet the same answer): the message
    goes to the dead-letter queue at once, with nothing of its transaction kept."""


EventHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]

MAX_INFRASTRUCTURE_BACKOFF_SECONDS = 30.0
#: How an event waits for the database to come back: 0.5 s doubling, capped, jittered.
INFRASTRUCTURE_BACKOFF = Backoff(base=0.5, cap=MAX_INFRASTRUCTURE_BACKOFF_SECONDS)


@dataclass(frozen=True)
class EventSubscription:
    """A handler for the event types matching ``patterns`` (AMQP topic patterns)."""

    name: str
    patterns: Sequence[str]
    handler: EventHandler

    def matches(self, event_type: str) -> bool:
        return any(routing_key_matches(pattern, event_type) for pattern in self.patterns)


class IdempotentConsumer:
    def __init__(
        self, database: Database, service: str, subscriptions: Sequence[EventSubscription]
    ) -> None:
        self._database = database
        self._service = service
        self._subscriptions = list(subscriptions)

    def queue_consumer(self, delivery_limit: int) -> QueueConsumer:
        patterns = sorted({pattern for sub in self._subscriptions for pattern in sub.patterns})
        return QueueConsumer(
            queue=topology.events_queue(self._service),
            bindings=patterns,
            callback=self.on_message,
            arguments=topology.events_queue_arguments(self._service, delivery_limit),
            dead_letter_queue=topology.dead_letter_queue(self._service),
        )

    def consumer_name(self, subscription: EventSubscription) -> str:
        return f"{self._service}.{subscription.name}"

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        if tracing.ENABLED:
            with tracing.consuming(
                topology.events_queue(self._service),
                message.headers,
                routing_key=message.routing_key or "",
                message_id=message.message_id,
                redelivered=bool(message.redelivered),
            ):
                await self._on_message(message)
            return
        await self._on_message(message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            event = CloudEvent.from_json_bytes(message.body)
        except ValidationError as exc:
            EVENTS_CONSUMED.labels(self._service, "-", message.type or "-", "rejected").inc()
            log.error("event_rejected", message_id=message.message_id, error=str(exc)[:500])
            await message.reject(requeue=False)
            return

        with bound_context(request_id=event.id, correlation_id=event.correlationid):
            held = 0
            while True:
                try:
                    outcomes = await self.process(event)
                except asyncio.CancelledError:
                    raise
                except EventRefused as exc:
                    EVENTS_CONSUMED.labels(self._service, "-", event.type, "refused").inc()
                    log.error("event_refused", event_type=event.type, reason=str(exc)[:500])
                    await message.reject(requeue=False)
                    return
                except Exception as exc:
                    if is_database_unavailable(exc):
                        log.warning("event_held_database_unavailable", error=str(exc)[:300])
                        held += 1
                        await asyncio.sleep(INFRASTRUCTURE_BACKOFF.delay(held))
                        continue
                    EVENTS_CONSUMED.labels(self._service, "-", event.type, "failed").inc()
                    log.exception("event_handler_failed", event_type=event.type)
                    await message.nack(requeue=True)
                    return
                break
            await message.ack()
            for consumer, outcome in outcomes:
                EVENTS_CONSUMED.labels(self._service, consumer, event.type, outcome).inc()
                log.info(
                    "event_consumed", event_type=event.type, consumer=consumer, outcome=outcome
                )

    async def process(self, event: CloudEvent) -> list[tuple[str, str]]:
        """Run every matching handler once per event id; returns (consumer, outcome) pairs."""
        outcomes: list[tuple[str, str]] = []
        async with self._database.transaction() as session:
            for subscription in self._subscriptions:
                if not subscription.matches(event.type):
                    continue
                consumer = self.consumer_name(subscription)
                first_time = await session.scalar(
                    pg_insert(processed_events)
                    .values(consumer=consumer, event_id=event.id, event_type=event.type)
                    .on_conflict_do_nothing()
                    .returning(processed_events.c.event_id)
                )
                if first_time is None:
                    outcomes.append((consumer, "duplicate"))
                    continue
                await subscription.handler(session, event)
                outcomes.append((consumer, "processed"))
        return outcomes
