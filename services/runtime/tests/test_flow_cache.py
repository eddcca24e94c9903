"""The worker's flow cache: one database read per flow when its entry expires, however many
messages wait for it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

from modyard.common.db.database import Database
from modyard.runtime.engine.flow_cache import FlowCache
from modyard.runtime.failures import RetryPolicy


class CountingDatabase:
    """Answers ``session.get(Flow, id)`` with one stored flow, slowly, counting the reads."""

    def __init__(self, flow: Any) -> None:
        self.flow = flow
        self.reads = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async def get(_model: Any, _flow_id: uuid.UUID) -> Any:
            self.reads += 1
            row = SimpleNamespace(**vars(self.flow))  # the row as the read's query saw it
            await asyncio.sleep(0.05)
            return row

        yield SimpleNamespace(get=get)


def _flow(status: str = "running") -> Any:
    return SimpleNamespace(
        id=uuid.uuid4(),
        workspace="ws",
        name="f",
        owner="me",
        status=status,
        revision=1,
        definition={"nodes": {"a": {"component": "core.log", "properties": {"message": "x"}}}},
    )


async def test_concurrent_misses_share_one_read() -> None:
    database = CountingDatabase(_flow())
    cache = FlowCache(cast(Database, database), RetryPolicy(), ttl=60)
    flows = await asyncio.gather(*(cache.get(database.flow.id) for _ in range(50)))
    assert database.reads == 1
    assert {flow.status for flow in flows if flow is not None} == {"running"}
    assert len({id(flow) for flow in flows}) == 1


async def test_forget_makes_the_next_get_read_again() -> None:
    database = CountingDatabase(_flow())
    cache = FlowCache(cast(Database, database), RetryPolicy(), ttl=60)
    await cache.get(database.flow.id)
    database.flow.status = "stopped"
    cache.forget(database.flow.id)
    flow = await cache.get(database.flow.id)
    assert database.reads == 2
    assert flow is not None
    assert flow.status == "stopped"


async def test_a_cancelled_waiter_leaves_the_read_to_the_others() -> None:
    database = CountingDatabase(_flow())
    cache = FlowCache(cast(Database, database), RetryPolicy(), ttl=60)
    first = asyncio.create_task(cache.get(database.flow.id))
    second = asyncio.create_task(cache.get(database.flow.id))
    await asyncio.sleep(0.01)
    first.cancel()
    flow = await second
    assert flow is not None
    assert flow.status == "running"
    assert database.reads == 1


async def test_a_read_in_flight_when_the_flow_changes_answers_its_waiter_but_is_not_kept() -> None:
    database = CountingDatabase(_flow())
    cache = FlowCache(cast(Database, database), RetryPolicy(), ttl=60)
    before = asyncio.create_task(cache.get(database.flow.id))
    await asyncio.sleep(0.01)  # the read has the running row
    database.flow.status = "stopped"
    cache.forget(database.flow.id)  # the stop's news
    flow = await before
    assert flow is not None
    assert flow.status == "running"
    after = await cache.get(database.flow.id)
    assert after is not None
    assert after.status == "stopped"
    assert database.reads == 2


async def test_forget_all_drops_every_copy() -> None:
    database = CountingDatabase(_flow())
    cache = FlowCache(cast(Database, database), RetryPolicy(), ttl=60)
    await cache.get(database.flow.id)
    cache.forget_all()
    await cache.get(database.flow.id)
    assert database.reads == 2
