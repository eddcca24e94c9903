"""The request log: one row per request, written in batches off the request path.

Answering a caller never waits for the log: entries are queued in memory and a background task
writes them every ``request_log_flush_seconds`` (or sooner when ``request_log_batch_size`` are
waiting) with PostgreSQL's ``COPY`` (asyncpg's binary copy), which costs the event loop a few
microseconds per row where an ``INSERT`` built by SQLAlchemy costs tens, and would show as latency
spikes of the requests served meanwhile. Reading the log first flushes what this process still holds. Rows older than
``request_log_retention_hours`` are deleted now and then.

The copies go over a connection of the log's own (an asyncpg pool of one), not the service's
SQLAlchemy pool: checking a connection out of that pool pings it first (a transaction begun and
rolled back) and runs through SQLAlchemy's greenlet bridge, which cost the gateway more CPU than
the copy itself, at every flush (py-spy, ``benchmarks/gateway.py``: half of the log's 8 % of the
gateway's samples). A connection the database dropped is replaced and the batch copied again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from sqlalchemy import delete, select

from modyard.appcell_gateway.models import RequestRecord
from modyard.common.db.database import Database
from modyard.common.db.raw_connections import CONNECTION_ERRORS, asyncpg_dsn, keep_session

log = structlog.get_logger(__name__)

CLEANUP_EVERY_SECONDS = 600.0
# Row ids: a random prefix per process and a counter, as text PostgreSQL reads as a uuid. A
# uuid4 per row cost a getrandom system call and uuid.UUID's checks (about 1.7 µs a request).
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count()
COLUMNS = (
    "id",
    "correlation_id",
    "installation_id",
    "cell",
    "plugin",
    "action",
    "resource",
    "ingress",
    "caller",
    "customer_product_id",
    "outcome",
    "status_code",
    "latency_ms",
    "detail",
    "created_at",
)


class RequestLog:
    def __init__(
        self,
        database: Database,
        *,
        database_url: str,
        batch_size: int,
        flush_seconds: float,
        retention_hours: float,
    ) -> None:
        self._database = database
        self._dsn = asyncpg_dsn(database_url)
        self._pool: asyncpg.Pool | None = None
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._retention = timedelta(hours=retention_hours)
        self._entries: list[tuple[Any, ...]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def record(
        self,
        *,
        correlation_id: str,
        installation_id: uuid.UUID | None,
        cell: str,
        plugin: str,
        action: str,
        resource: str | None,
        ingress: str,
        caller: str,
        customer_product_id: str | None,
        outcome: str,
        status_code: int,
        latency_ms: float,
        detail: str | None,
    ) -> None:
        # The row as COPY takes it (in COLUMNS' order), built once: 2.8 -> 1.0 µs a request
        # against a dict per entry turned into a tuple at the flush.
        self._entries.append(
            (
                f"{_ID_PREFIX}{next(_ids):016x}",
                correlation_id,
                installation_id,
                cell,
                plugin,
                action,
                resource,
                ingress,
                caller,
                customer_product_id,
                outcome,
                status_code,
                latency_ms,
                detail,
                datetime.now(UTC),
            )
        )
        if len(self._entries) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            while self._entries:
                batch, self._entries = (
                    self._entries[: self._batch_size],
                    self._entries[self._batch_size :],
                )
                try:
                    await self._copy(batch)
                except Exception:
                    # The log is diagnostics: losing a batch must not stop the gateway.
                    log.exception("request_log_write_failed", rows=len(batch))

    async def _copy(self, records: list[tuple[Any, ...]]) -> None:
        for attempt in (1, 2):
            pool = await self._connections()
            try:
                await pool.copy_records_to_table(
                    RequestRecord.__tablename__,
                    records=records,
                    columns=COLUMNS,
                    schema_name=self._database.schema,
                )
                return
            except (*CONNECTION_ERRORS, OSError):
                # After a database restart the pooled connection is dead: a new one, once.
                await pool.expire_connections()
                if attempt == 2:
                    raise

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=0,
                max_size=1,
                reset=keep_session,  # a COPY leaves no session state behind
                server_settings={"application_name": "modyard-appcell-gateway-request-log"},
            )
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def run(self) -> None:
        last_cleanup = 0.0
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._flush_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                await self.flush()
                if loop.time() - last_cleanup > CLEANUP_EVERY_SECONDS:
                    last_cleanup = loop.time()
                    await self._cleanup()
        finally:
            await asyncio.shield(self._flush_and_close())

    async def _flush_and_close(self) -> None:
        await self.flush()
        await self.close()

    async def _cleanup(self) -> None:
        cutoff = datetime.now(UTC) - self._retention
        try:
            async with self._database.transaction() as session:
                await session.execute(
                    delete(RequestRecord).where(RequestRecord.created_at < cutoff)
                )
        except Exception:
            log.exception("request_log_cleanup_failed")

    async def recent(
        self,
        *,
        installation_id: uuid.UUID | None,
        cell: str | None,
        status: str | None,
        limit: int,
    ) -> Sequence[RequestRecord]:
        await self.flush()
        query = select(RequestRecord).order_by(RequestRecord.created_at.desc()).limit(limit)
        if installation_id is not None:
            query = query.where(RequestRecord.installation_id == installation_id)
        elif cell is not None:
            query = query.where(RequestRecord.cell == cell)
        if status == "error":
            query = query.where(RequestRecord.outcome != "success")
        elif status is not None:
            query = query.where(RequestRecord.outcome == status)
        async with self._database.transaction() as session:
            return list(await session.scalars(query))
