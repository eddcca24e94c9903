"""What the gateway does off the request path: re-checking compiled cells against the stored
revision, and writing the request log over a connection of its own."""

from __future__ import annotations

import asyncio

import pytest
from gateway_env import WS, Env
from sqlalchemy import text

from modyard.appcell_gateway.cells.store import CellCache
from modyard.appcell_gateway.request_log.service import RequestLog

pytestmark = pytest.mark.infra

RC = f"{WS}:rc"


async def _checked(cache: CellCache) -> None:
    # The re-check runs as a task of its own; let it finish.
    for _ in range(200):
        if not cache._refreshing:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the cell's re-check did not finish")


async def test_a_compiled_cell_is_kept_while_its_revision_stands_and_recompiled_when_it_moves(
    env: Env,
) -> None:
    cache = CellCache(env.gateway.database, refresh_seconds=0.0)
    first = await cache.get(RC)

    assert await cache.get(RC) is first  # stale: served, and checked in the background
    await _checked(cache)
    assert await cache.get(RC) is first  # same revision: the compiled copy stays
    await _checked(cache)

    async with env.gateway.database.transaction() as session:
        await session.execute(
            text("UPDATE cells SET revision = revision + 1 WHERE installation_id = :id"),
            {"id": first.installation_id},
        )
    await cache.get(RC)
    await _checked(cache)
    recompiled = await cache.get(RC)
    assert recompiled is not first
    assert recompiled.revision == first.revision + 1
    assert recompiled.plugins.keys() == first.plugins.keys()


async def test_the_request_log_writes_again_after_its_connection_was_killed(env: Env) -> None:
    log: RequestLog = env.gateway.requests
    database = env.gateway.database

    def entry(correlation_id: str) -> dict[str, object]:
        return {
            "correlation_id": correlation_id,
            "installation_id": None,
            "cell": RC,
            "plugin": "NewResellerClub",
            "action": "fetch",
            "resource": "Domain",
            "ingress": "http",
            "caller": "test",
            "customer_product_id": None,
            "outcome": "success",
            "status_code": 200,
            "latency_ms": 1.0,
            "detail": None,
        }

    async def logged(correlation_id: str) -> int:
        async with database.transaction() as session:
            found = await session.scalar(
                text("SELECT count(*) FROM requests WHERE correlation_id = :id"),
                {"id": correlation_id},
            )
        return int(found or 0)

    log.record(**entry("before-kill"))
    await log.flush()
    assert await logged("before-kill") == 1

    # The database drops the log's connection (a restart, an operator): the next batch still lands.
    async with database.transaction() as session:
        killed = await session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'modyard-appcell-gateway-request-log'"
            )
        )
    assert (killed or 0) >= 1
    log.record(**entry("after-kill"))
    await log.flush()
    assert await logged("after-kill") == 1
