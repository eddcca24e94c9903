"""A queue of each process's own: every replica hears the events, and learns when it may have
missed some (real RabbitMQ)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from modyard.common.bus.connection import Bus
from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.common.bus.process_queue import process_queue
from modyard.common.settings import ServiceSettings
from modyard.testing.broker_connections import close_connections_named
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually

pytestmark = pytest.mark.infra


class Replica:
    """One process of a service: its bus, and what its own queue told it."""

    def __init__(self, infra: IsolatedInfra, service: str, pattern: str) -> None:
        class Settings(ServiceSettings):
            service_name = service

        self.bus = Bus(Settings(database_url=infra.database_url, amqp_url=infra.amqp_url))
        self.heard: list[CloudEvent] = []
        self.reconnects = 0
        self.bus.add_topology(
            process_queue(f"{service}.news", [pattern], self.heard.append, on_reconnect=self._lost)
        )

    def _lost(self) -> None:
        self.reconnects += 1


@pytest.fixture
async def replicas(infra: IsolatedInfra) -> AsyncIterator[Callable[..., Any]]:
    started: list[Replica] = []

    async def start(service: str, pattern: str) -> Replica:
        replica = Replica(infra, service, pattern)
        replica.bus.start()
        await replica.bus.wait_ready(timeout=15)
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await replica.bus.close()


async def test_every_replica_hears_each_event_once(
    replicas: Callable[..., Any], infra: IsolatedInfra
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    kind = f"modyard.test{uuid.uuid4().hex[:8]}.thing.changed"
    one = await replicas(service, "modyard.*.thing.changed")
    two = await replicas(service, "modyard.*.thing.changed")
    events = [new_event(source="/test", type=kind, data={"n": n}) for n in range(3)]
    for event in events:
        await one.bus.publish(event)
    await eventually(lambda: len(one.heard) == 3 and len(two.heard) == 3)
    # Each replica got all three (not one each, as from the service's shared queue), once each.
    assert [e.id for e in one.heard] == [e.id for e in events]
    assert [e.id for e in two.heard] == [e.id for e in events]
    other = new_event(source="/test", type=kind.replace(".thing.", ".other."), data={})
    await one.bus.publish(other)
    await asyncio.sleep(0.3)
    assert len(one.heard) == 3  # only what the pattern binds


async def test_a_replica_learns_it_may_have_missed_events_and_hears_the_next(
    replicas: Callable[..., Any], infra: IsolatedInfra
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    kind = f"modyard.test{uuid.uuid4().hex[:8]}.thing.changed"
    replica = await replicas(service, kind)
    await close_connections_named(infra, f"modyard-{service}")
    await eventually(lambda: replica.reconnects == 1, timeout=20)
    await eventually(lambda: replica.bus.is_connected)
    event = new_event(source="/test", type=kind, data={})
    await replica.bus.publish(event)
    await eventually(lambda: [e.id for e in replica.heard] == [event.id])
