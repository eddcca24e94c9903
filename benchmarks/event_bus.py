"""Throughput of the outbox relay and latency from commit to a consumer's handler."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.connection import Bus
from modyard.common.bus.consumer import EventSubscription, IdempotentConsumer
from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.common.bus.outbox import OutboxRelay, record_event
from modyard.common.db.database import Database
from modyard.common.db.messaging_tables import metadata
from modyard.common.settings import ServiceSettings
from modyard.testing.infra import IsolatedInfra


class _Node:
    def __init__(self, infra: IsolatedInfra, name: str) -> None:
        class Settings(ServiceSettings):
            service_name = name

        self.settings = Settings(
            database_url=infra.database_url, amqp_url=infra.amqp_url, outbox_batch_size=500
        )
        self.database = Database(self.settings)
        self.bus = Bus(self.settings)
        self.relay = OutboxRelay(self.database, self.bus, self.settings)

    async def prepare(self) -> None:
        async with self.database.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{self.settings.db_schema}"'))
            await connection.run_sync(metadata.create_all)

    async def start(self) -> None:
        self.bus.start()
        await self.bus.wait_ready(timeout=15)

    async def close(self) -> None:
        await self.bus.close()
        await self.database.dispose()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def outbox_throughput(infra: IsolatedInfra, events: int = 5000) -> dict[str, Any]:
    """Events committed to the outbox in batches, then relayed until every one is confirmed."""
    node = _Node(infra, _name("bench-outbox"))
    await node.prepare()
    event_type = f"modyard.bench{uuid.uuid4().hex[:6]}.thing.happened"
    try:
        started = time.perf_counter()
        for offset in range(0, events, 500):
            async with node.database.transaction() as session:
                for _ in range(min(500, events - offset)):
                    await record_event(
                        session, new_event(source="/bench", type=event_type, data={"n": offset})
                    )
        written = time.perf_counter() - started
        await node.start()
        started = time.perf_counter()
        relayed = 0
        while relayed < events:
            relayed += await node.relay.relay_once()
        elapsed = time.perf_counter() - started
    finally:
        await node.close()
    return {
        "benchmark": "outbox_relay_throughput",
        "events": events,
        "write_events_per_second": round(events / written),
        "relay_events_per_second": round(events / elapsed),
        "relay_seconds": round(elapsed, 3),
    }


async def event_latency(infra: IsolatedInfra, events: int = 300) -> dict[str, Any]:
    """Commit of an event in one service → its handler ran in another (idempotently), one at a time."""
    event_type = f"modyard.bench{uuid.uuid4().hex[:6]}.thing.happened"
    producer = _Node(infra, _name("bench-producer"))
    consumer = _Node(infra, _name("bench-consumer"))
    await producer.prepare()
    await consumer.prepare()
    arrived: dict[str, asyncio.Future[float]] = {}

    async def handler(_session: AsyncSession, event: CloudEvent) -> None:
        future = arrived.get(event.id)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    idempotent = IdempotentConsumer(
        consumer.database,
        consumer.settings.service_name,
        [EventSubscription("bench", [event_type], handler)],
    )
    consumer.bus.add_consumer(idempotent.queue_consumer(10))
    await producer.start()
    await consumer.start()
    relay_task = asyncio.create_task(producer.relay.run())
    latencies: list[float] = []
    try:
        loop = asyncio.get_running_loop()
        for _ in range(events):
            event = new_event(source="/bench", type=event_type, data={})
            arrived[event.id] = loop.create_future()
            started = time.perf_counter()
            async with producer.database.transaction() as session:
                await record_event(session, event)
            latencies.append((await asyncio.wait_for(arrived[event.id], 10)) - started)
    finally:
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)
        await producer.close()
        await consumer.close()
    latencies.sort()
    return {
        "benchmark": "event_commit_to_handler_latency",
        "events": events,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
    }
