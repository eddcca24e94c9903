"""``context.lock(name, {ttl, retryDelay, maxRetryCount})`` on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from persistence_env import PersistentHarness

from modyard.jsrunner.tables import locks as locks_table

pytestmark = pytest.mark.infra

#: A read-modify-write that loses updates unless the lock serialises its callers.
GUARDED = """
module.exports = {
    async receive(context) {
        const { name, unlock, fail, skipIfHeld } = context.messages.in.content;
        let lock;
        try {
            lock = await context.lock(name, skipIfHeld ? { maxRetryCount: 0 } : { ttl: 30000, retryDelay: 50 });
        } catch (err) {
            return context.sendJson({ skipped: err.message, code: err.code }, 'out');
        }
        const before = (await context.flow.stateGet(name)) || 0;
        await new Promise((resolve) => setImmediate(resolve));
        await context.flow.stateSet(name, before + 1);
        if (fail) throw new Error('failed while holding the lock');
        if (unlock) await lock.unlock();
        return context.sendJson({ counted: before + 1 }, 'out');
    }
};
"""

COUNT = """
module.exports = {
    async receive(context) {
        const n = await context.flow.stateGet(context.messages.in.content.name);
        return context.sendJson({ n: n === undefined ? null : n }, 'out');
    }
};
"""


async def _count(persistent: PersistentHarness, module: str, name: str, **scope: str) -> object:
    reply = await persistent.run(module, "Count", {"name": name}, **scope)
    return reply["outputs"]["out"][0]["n"]


async def test_a_hundred_concurrent_callers_are_serialised(persistent: PersistentHarness) -> None:
    module = persistent.module({"Guarded": GUARDED, "Count": COUNT})
    replies = await asyncio.gather(
        *(
            persistent.run(module, "Guarded", {"name": "counter", "unlock": index % 2 == 0})
            for index in range(100)
        )
    )
    counted = sorted(reply["outputs"]["out"][0]["counted"] for reply in replies)
    assert counted == list(range(1, 101))  # no two callers read the same value
    assert await _count(persistent, module, "counter") == 100
    assert await _rows(persistent) == []  # every lock released (explicitly or at the call's end)


async def test_a_lock_is_released_when_its_call_ends_even_by_failing(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Guarded": GUARDED, "Count": COUNT})
    kept = await persistent.run(module, "Guarded", {"name": "kept", "unlock": False})
    assert kept["outputs"]["out"] == [{"counted": 1}]
    failed = await persistent.run(module, "Guarded", {"name": "kept", "fail": True})
    assert "failed while holding the lock" in failed["error"]["message"]
    # Neither left it held: a caller that does not wait gets it at once.
    again = await persistent.run(module, "Guarded", {"name": "kept", "skipIfHeld": True})
    assert again["outputs"]["out"] == [{"counted": 3}]
    assert await _rows(persistent) == []


async def test_a_lock_held_elsewhere_is_refused_until_its_ttl_passes(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Guarded": GUARDED, "Count": COUNT})
    await _hold(persistent, "wsa", "busy", "another-runner", timedelta(minutes=5))
    refused = await persistent.run(module, "Guarded", {"name": "busy", "skipIfHeld": True})
    assert refused["outputs"]["out"][0]["code"] == "ERR_LOCKED"
    assert "held by another call" in refused["outputs"]["out"][0]["skipped"]
    assert await _count(persistent, module, "busy") is None  # it did not run its section
    # A crashed holder's lock (its ttl passed) is taken over.
    await _hold(persistent, "wsa", "stale", "crashed-runner", timedelta(seconds=-1))
    taken = await persistent.run(module, "Guarded", {"name": "stale", "skipIfHeld": True})
    assert taken["outputs"]["out"] == [{"counted": 1}]


async def test_locks_of_two_workspaces_never_exclude_each_other(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Guarded": GUARDED, "Count": COUNT})
    await _hold(persistent, "wsa", "shared-name", "a-holder", timedelta(minutes=5))
    before = await _rows(persistent)
    other = await persistent.run(
        module, "Guarded", {"name": "shared-name", "skipIfHeld": True}, workspace="wsb"
    )
    assert other["outputs"]["out"] == [{"counted": 1}]
    # The first workspace's lock is still held by its holder, untouched.
    assert await _rows(persistent) == before
    refused = await persistent.run(module, "Guarded", {"name": "shared-name", "skipIfHeld": True})
    assert refused["outputs"]["out"][0]["code"] == "ERR_LOCKED"


async def _hold(
    persistent: PersistentHarness, workspace: str, name: str, token: str, ttl: timedelta
) -> None:
    async with persistent.api.database.transaction() as session:
        await session.execute(
            sa.insert(locks_table).values(
                workspace=workspace, name=name, token=token, expires_at=datetime.now(UTC) + ttl
            )
        )


async def _rows(persistent: PersistentHarness) -> list[tuple[object, ...]]:
    async with persistent.api.database.transaction() as session:
        rows = await session.execute(
            sa.select(locks_table.c.workspace, locks_table.c.name, locks_table.c.token)
            .where(locks_table.c.expires_at > sa.func.now())
            .order_by(locks_table.c.workspace, locks_table.c.name)
        )
        return [tuple(row) for row in rows]
