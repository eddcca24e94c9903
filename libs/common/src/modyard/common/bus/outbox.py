"""The transactional outbox: events are written with the change that caused them, then relayed.

:func:`record_event` inserts the event in the caller's transaction, so an event exists if and only
if its change committed. :class:`OutboxRelay` publishes pending rows with publisher confirms and
marks them published; a row whose publication fails is retried with backoff, so an event is
delivered at least once (consumers are idempotent, which makes it exactly once in effect).
Several replicas may relay at the same time: ``FOR UPDATE SKIP LOCKED`` gives each row to one.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.backoff import Backoff
from modyard.common.bus import topology
from modyard.common.bus.connection import Bus
from modyard.common.bus.envelope import CloudEvent
from modyard.common.db.commit_hooks import after_commit
from modyard.common.db.database import OUTBOX_WAKE_KEY, Database
from modyard.common.db.messaging_tables import outbox, processed_events
from modyard.common.observability.metrics import (
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
    OUTBOX_PUBLISH_FAILURES,
)
from modyard.common.settings import ServiceSettings

log = structlog.get_logger(__name__)

MAX_RETRY_DELAY = timedelta(minutes=5)
CLEANUP_EVERY = timedelta(minutes=10)


async def record_event(
    session: AsyncSession,
    event: CloudEvent,
    *,
    exchange: str = topology.EVENTS_EXCHANGE,
    routing_key: str | None = None,
) -> None:
    """Add ``event`` to the outbox inside the session's transaction."""
    await session.execute(
        insert(outbox).values(
            event_id=event.id,
            exchange=exchange,
            routing_key=routing_key or event.type,
            envelope=event.model_dump(mode="json", exclude_none=True),
        )
    )
    wake = session.info.get(OUTBOX_WAKE_KEY)
    if wake is not None and not session.info.get("modyard_outbox_hooked"):
        session.info["modyard_outbox_hooked"] = True
        after_commit(session, wake)


#: A row that failed to publish waits 2 s, 4 s, 8 s … up to MAX_RETRY_DELAY, jittered so that the
#: rows a broker outage failed together are not all retried in the same instant.
RETRY_BACKOFF = Backoff(base=2, cap=MAX_RETRY_DELAY.total_seconds())


def retry_delay(attempts: int) -> timedelta:
    """The wait after a row's ``attempts``-th failed publication."""
    return timedelta(seconds=RETRY_BACKOFF.delay(attempts))


class OutboxRelay:
    def __init__(self, database: Database, bus: Bus, settings: ServiceSettings) -> None:
        self._database = database
        self._bus = bus
        self._service = settings.service_name
        self._batch_size = settings.outbox_batch_size
        self._poll_interval = settings.outbox_poll_interval_seconds
        # After a failed round (the database away), polls thin out to 30 intervals apart.
        self._failure_backoff = Backoff(base=2 * self._poll_interval, cap=30 * self._poll_interval)
        self._retention = timedelta(hours=settings.outbox_retention_hours)
        self._processed_retention = timedelta(hours=settings.processed_events_retention_hours)
        self._wakeup = asyncio.Event()
        self._last_cleanup = datetime.min.replace(tzinfo=UTC)
        database.on_outbox_commit = self._wakeup.set

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Relay forever; failures are logged and retried, never fatal."""
        failures = 0
        while True:
            self._wakeup.clear()
            try:
                relayed = await self.relay_once()
                await self._cleanup_if_due()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                relayed = 0
                log.warning("outbox_relay_failed", error=str(exc), failures=failures)
            if relayed >= self._batch_size:
                continue  # more may be waiting: don't sleep between full batches
            delay = self._failure_backoff.delay(failures) if failures else self._poll_interval
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a shutdown's
            # cancellation that races a wake-up, and the relay would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()

    async def relay_once(self) -> int:
        """Publish one batch of due rows; returns how many were confirmed by the broker."""
        if not self._bus.is_connected:
            return 0
        async with self._database.transaction() as session:
            rows = (
                await session.execute(
                    select(
                        outbox.c.seq,
                        outbox.c.exchange,
                        outbox.c.routing_key,
                        outbox.c.envelope,
                        outbox.c.attempts,
                    )
                    .where(outbox.c.published_at.is_(None), outbox.c.next_attempt_at <= func.now())
                    .order_by(outbox.c.seq)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                # Nothing due; rows waiting for a retry still count, with their age.
                await self._backlog(session)
                return 0
            # Confirms are pipelined: publish the whole batch, then wait for every answer.
            results = await asyncio.gather(
                *(
                    self._bus.publish(
                        CloudEvent.model_validate(row.envelope),
                        exchange=row.exchange,
                        routing_key=row.routing_key,
                    )
                    for row in rows
                ),
                return_exceptions=True,
            )
            published = [
                row.seq for row, result in zip(rows, results, strict=True) if result is None
            ]
            if published:
                await session.execute(
                    update(outbox)
                    .where(outbox.c.seq.in_(published))
                    .values(published_at=func.now())
                )
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    OUTBOX_PUBLISH_FAILURES.labels(self._service).inc()
                    log.warning("outbox_publish_failed", seq=row.seq, error=repr(result))
                    await session.execute(
                        update(outbox)
                        .where(outbox.c.seq == row.seq)
                        .values(
                            attempts=row.attempts + 1,
                            next_attempt_at=datetime.now(UTC) + retry_delay(row.attempts + 1),
                            last_error=repr(result)[:2000],
                        )
                    )
            await self._backlog(session)
        return len(published)

    async def _backlog(self, session: AsyncSession) -> None:
        """Rows not yet confirmed, and the age of the oldest (the backlog alerts read both)."""
        backlog = (
            await session.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(
                    outbox.c.published_at.is_(None)
                )
            )
        ).one()
        OUTBOX_PENDING.labels(self._service).set(backlog[0] or 0)
        oldest = backlog[1]
        OUTBOX_OLDEST_AGE.labels(self._service).set(
            (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0
        )

    async def _cleanup_if_due(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_cleanup < CLEANUP_EVERY:
            return
        self._last_cleanup = now
        async with self._database.transaction() as session:
            await session.execute(
                delete(outbox).where(outbox.c.published_at < now - self._retention)
            )
            # Idempotency records only need to outlive any redelivery of their event.
            await session.execute(
                delete(processed_events).where(
                    processed_events.c.processed_at < now - self._processed_retention
                )
            )
