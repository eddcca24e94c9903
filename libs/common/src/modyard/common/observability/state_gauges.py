"""Gauges of what a service's tables hold (dead letters waiting, deployments in warn…), counted
every few seconds by a background task rather than on each scrape: a scrape then never waits for
the database, and a database outage leaves the last values in place (readiness reports it).

Every replica reports the same counts: aggregate with ``max`` across instances, not ``sum``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.db.database import Database

log = structlog.get_logger(__name__)

Refresh = Callable[[AsyncSession], Awaitable[None]]


async def refresh_state_gauges(
    database: Database, migrated: asyncio.Event, refresh: Refresh, *, interval: float = 15.0
) -> None:
    """Run ``refresh`` (which sets gauges from queries) now and every ``interval`` seconds."""
    await migrated.wait()
    while True:
        try:
            async with database.transaction() as session:
                await refresh(session)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("state_gauges_not_refreshed", error=str(exc)[:200])
        await asyncio.sleep(interval)
