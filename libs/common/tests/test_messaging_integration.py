"""The outbox, the relay and the idempotent consumer against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus import topology
from modyard.common.bus.connection import Bus, BusUnavailable
from modyard.common.bus.consumer import EventRefused, EventSubscription, IdempotentConsumer
from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.common.bus.outbox import OutboxRelay, record_event
from modyard.common.db.database import Database
from modyard.common.db.messaging_tables import metadata, outbox, processed_events
from modyard.common.settings import ServiceSettings
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra


def settings_for(infra: IsolatedInfra, name: str, **overrides: Any) -> ServiceSettings:
    class Settings(ServiceSettings):
        service_name = name

    return Settings(database_url=infra.database_url, amqp_url=infra.amqp_url, **overrides)


@dataclass
class Node:
    """One service's messaging stack: its database schema, bus, relay and consumer."""

    settings: ServiceSettings
    database: Database
    bus: Bus
    relay: OutboxRelay
    handled: list[CloudEvent]


@pytest.fixture
async def make_node(infra: IsolatedInfra) -> AsyncIterator[Callable[..., Any]]:
    nodes: list[Node] = []
    tasks: list[asyncio.Task[None]] = []

    async def make(
        patterns: list[str] | None = None,
        *,
        fail_with: Exception | None = None,
        delivery_limit: int = 10,
        start: bool = True,
    ) -> Node:
        name = f"svc-{uuid.uuid4().hex[:8]}"
        settings = settings_for(
            infra, name, consumer_delivery_limit=delivery_limit, outbox_poll_interval_seconds=0.2
        )
        database = Database(settings)
        async with database.engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{settings.db_schema}"'))
            await connection.run_sync(metadata.create_all)
        bus = Bus(settings)
        handled: list[CloudEvent] = []

        async def handler(session: AsyncSession, event: CloudEvent) -> None:
            await session.execute(text("SELECT 1"))
            if fail_with is not None:
                raise fail_with
            handled.append(event)

        if patterns:
            consumer = IdempotentConsumer(
                database, name, [EventSubscription("test", patterns, handler)]
            )
            bus.add_consumer(consumer.queue_consumer(delivery_limit))
        relay = OutboxRelay(database, bus, settings)
        node = Node(settings, database, bus, relay, handled)
        nodes.append(node)
        if start:
            bus.start()
            await bus.wait_ready(timeout=15)
            tasks.append(asyncio.create_task(relay.run()))
        return node

    yield make
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for node in nodes:
        await node.bus.close()
        await node.database.dispose()


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await _call(predicate):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _call(predicate: Callable[[], Any]) -> Any:
    result = predicate()
    return await result if asyncio.iscoroutine(result) else result


def unique_type() -> str:
    return f"modyard.test{uuid.uuid4().hex[:8]}.thing.happened"


async def queue_depth(infra: IsolatedInfra, queue: str) -> int:
    async with httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
    ) as api:
        response = await api.get(f"/api/queues/{infra.vhost}/{queue}")
        response.raise_for_status()
        body = response.json()
        return int(body.get("messages", 0))


async def test_committed_event_reaches_the_consumer_exactly_once(
    make_node: Callable[..., Any],
) -> None:
    kind = unique_type()
    consumer = await make_node([kind])
    producer = await make_node()
    event = new_event(source="/test", type=kind, data={"n": 1})

    async with producer.database.transaction() as session:
        await record_event(session, event)

    await eventually(lambda: len(consumer.handled) == 1)
    assert consumer.handled[0].id == event.id
    async with producer.database.transaction() as session:
        published_at = await session.scalar(
            select(outbox.c.published_at).where(outbox.c.event_id == event.id)
        )
    assert published_at is not None


async def test_rolled_back_event_is_never_published(make_node: Callable[..., Any]) -> None:
    kind = unique_type()
    consumer = await make_node([kind])
    producer = await make_node()

    async def failing_change() -> None:
        async with producer.database.transaction() as session:
            await record_event(session, new_event(source="/test", type=kind, data={}))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    committed = new_event(source="/test", type=kind, data={})
    async with producer.database.transaction() as session:
        await record_event(session, committed)
    await eventually(lambda: len(consumer.handled) == 1)
    await asyncio.sleep(0.3)
    assert [event.id for event in consumer.handled] == [committed.id]


async def test_same_event_delivered_twice_is_handled_once(make_node: Callable[..., Any]) -> None:
    kind = unique_type()
    consumer = await make_node([kind])
    producer = await make_node()
    event = new_event(source="/test", type=kind, data={"n": 1})

    await producer.bus.publish(event)
    await producer.bus.publish(event)

    labels = {
        "service": consumer.settings.service_name,
        "consumer": f"{consumer.settings.service_name}.test",
        "type": kind,
    }

    def consumed(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value(
                "modyard_events_consumed_total", {**labels, "outcome": outcome}
            )
            or 0
        )

    await eventually(lambda: consumed("processed") == 1 and consumed("duplicate") == 1)
    assert len(consumer.handled) == 1
    async with consumer.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(processed_events)) == 1


async def test_malformed_message_goes_to_the_dead_letter_queue(
    make_node: Callable[..., Any], infra: IsolatedInfra
) -> None:
    kind = unique_type()
    consumer = await make_node([kind])
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.EVENTS_EXCHANGE)
        await exchange.publish(aio_pika.Message(b"{not a cloud event"), routing_key=kind)
    dead_queue = topology.dead_letter_queue(consumer.settings.service_name)

    async def dead_lettered() -> bool:
        return await queue_depth(infra, dead_queue) == 1

    await eventually(dead_lettered, timeout=15)
    assert consumer.handled == []


async def test_failing_handler_is_dead_lettered_after_the_delivery_limit(
    make_node: Callable[..., Any], infra: IsolatedInfra
) -> None:
    kind = unique_type()
    consumer = await make_node([kind], fail_with=ValueError("handler bug"), delivery_limit=2)
    producer = await make_node()
    await producer.bus.publish(new_event(source="/test", type=kind, data={}))
    dead_queue = topology.dead_letter_queue(consumer.settings.service_name)

    async def dead_lettered() -> bool:
        return await queue_depth(infra, dead_queue) == 1

    await eventually(dead_lettered, timeout=20)
    async with consumer.database.transaction() as session:
        # The failed attempts rolled back their processed-event records too.
        assert await session.scalar(select(func.count()).select_from(processed_events)) == 0


async def test_a_refused_event_is_dead_lettered_on_its_first_delivery(
    make_node: Callable[..., Any], infra: IsolatedInfra
) -> None:
    kind = unique_type()
    consumer = await make_node([kind], fail_with=EventRefused("the installer answered 422"))
    producer = await make_node()
    await producer.bus.publish(new_event(source="/test", type=kind, data={}))
    dead_queue = topology.dead_letter_queue(consumer.settings.service_name)

    async def dead_lettered() -> bool:
        return await queue_depth(infra, dead_queue) == 1

    await eventually(dead_lettered, timeout=15)
    labels = {"service": consumer.settings.service_name, "consumer": "-", "type": kind}
    outcomes = {
        outcome: REGISTRY.get_sample_value(
            "modyard_events_consumed_total", {**labels, "outcome": outcome}
        )
        for outcome in ("refused", "failed")
    }
    # Once, not delivery-limit times.
    assert outcomes == {"refused": 1.0, "failed": None}


async def test_events_wait_in_the_outbox_while_the_broker_is_away(
    make_node: Callable[..., Any],
) -> None:
    kind = unique_type()
    consumer = await make_node([kind])
    producer = await make_node(start=False)
    event = new_event(source="/test", type=kind, data={})
    async with producer.database.transaction() as session:
        await record_event(session, event)

    assert await producer.relay.relay_once() == 0
    with pytest.raises(BusUnavailable):
        await producer.bus.publish(event)

    producer.bus.start()
    await producer.bus.wait_ready(timeout=15)
    assert await producer.relay.relay_once() == 1
    await eventually(lambda: len(consumer.handled) == 1)


async def test_relay_housekeeping_deletes_only_old_published_rows_and_records(
    make_node: Callable[..., Any],
) -> None:
    node = await make_node(start=False)
    kind = unique_type()
    old, fresh, pending = (new_event(source="/test", type=kind, data={}) for _ in range(3))
    async with node.database.transaction() as session:
        for event in (old, fresh, pending):
            await record_event(session, event)
        await session.execute(
            outbox.update()
            .where(outbox.c.event_id == old.id)
            .values(published_at=text("now() - interval '30 days'"))
        )
        await session.execute(
            outbox.update().where(outbox.c.event_id == fresh.id).values(published_at=text("now()"))
        )
        await session.execute(
            processed_events.insert().values(
                consumer="c",
                event_id="ancient",
                event_type=kind,
                processed_at=text("now() - interval '90 days'"),
            )
        )
        await session.execute(
            processed_events.insert().values(consumer="c", event_id="recent", event_type=kind)
        )

    await node.relay._cleanup_if_due()

    async with node.database.transaction() as session:
        remaining = set(await session.scalars(select(outbox.c.event_id)))
        remembered = set(await session.scalars(select(processed_events.c.event_id)))
    assert remaining == {fresh.id, pending.id}
    assert remembered == {"recent"}


async def test_the_relay_stops_when_cancelled_as_it_is_woken(infra: IsolatedInfra) -> None:
    # Regression (a CI teardown hung 30 s): the relay slept in asyncio.wait_for(event.wait()),
    # and Python 3.11's wait_for returns the event's result instead of raising when the
    # cancellation and the wake-up land in the same loop step, so the relay never stopped.
    settings = settings_for(infra, f"svc-{uuid.uuid4().hex[:8]}", outbox_poll_interval_seconds=60)
    database = Database(settings)
    async with database.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{settings.db_schema}"'))
        await connection.run_sync(metadata.create_all)
    bus = Bus(settings)
    relay = OutboxRelay(database, bus, settings)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # one empty pass, then asleep for the 60 s poll interval
        assert not task.done()
        relay.wake()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done, "the relay ignored its cancellation"
        assert task.cancelled()
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=1)
        await bus.close()
        await database.dispose()


async def test_a_burst_published_in_one_turn_arrives_whole_and_confirmed(
    make_node: Callable[..., Any],
) -> None:
    """The bus's frames of one loop turn go out in one write: 300 publishes started together
    are all confirmed, and each arrives once with its own body."""
    kind = unique_type()
    consumer = await make_node([kind])
    producer = await make_node()
    events = [
        new_event(source="/test", type=kind, data={"n": n, "pad": "x" * n}) for n in range(300)
    ]
    await asyncio.gather(*(producer.bus.publish(event) for event in events))
    await eventually(lambda: len(consumer.handled) == len(events))
    assert sorted(event.data["n"] for event in consumer.handled) == list(range(300))
    assert all(event.data["pad"] == "x" * event.data["n"] for event in consumer.handled)
