"""The record of node executions, on a plain asyncpg pool.

This is the worker's hot path: one lookup and one insert per node execution. Going around the ORM
here (and only here) is what lets one process run hundreds of node executions per second; the
statements are prepared once per connection by asyncpg.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from modyard.common.settings import ServiceSettings

CONNECTION_ERRORS = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
)

_OUTPUTS = "SELECT outputs FROM node_executions WHERE message_id = $1"
# One statement, so atomic without an explicit transaction (BEGIN/COMMIT would be two more round
# trips): the node's log lines are written only when this delivery recorded the success.
_RECORD = """
WITH recorded AS (
    INSERT INTO node_executions (message_id, flow_id, node_id, outputs)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id
), logged AS (
    INSERT INTO node_logs (flow_id, node_id, message_id, entry)
    SELECT $2, $3, recorded.message_id, line.entry
    FROM recorded, unnest($5::jsonb[]) WITH ORDINALITY AS line(entry, position)
    ORDER BY line.position
)
SELECT count(*) FROM recorded
"""


async def _json_codec(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset on release: these statements leave no session state behind (no SET,
    LISTEN, cursors or advisory locks), and asyncpg still rolls back an unfinished transaction.
    The default reset query would be one more round trip per node execution."""


class ExecutionLedger:
    def __init__(self, settings: ServiceSettings, *, max_size: int) -> None:
        url = make_url(settings.database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._schema = settings.db_schema
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._max_size,
                        init=_json_codec,
                        reset=_keep_session,
                        server_settings={
                            "search_path": self._schema,
                            "application_name": "modyard-runtime-worker",
                        },
                    )
        return self._pool

    async def outputs(self, message_id: str) -> dict[str, Any] | None:
        """What the node produced for this message, if it already ran it successfully."""
        pool = await self._connections()
        found: dict[str, Any] | None = await pool.fetchval(_OUTPUTS, message_id)
        return found

    async def record(
        self,
        *,
        message_id: str,
        flow_id: uuid.UUID,
        node_id: str,
        outputs: dict[str, Any],
        logs: list[Any],
    ) -> dict[str, Any]:
        """Record the success with its log lines; returns the outputs to send on (the first
        recorded ones if another delivery of the same message won the race)."""
        pool = await self._connections()
        if await pool.fetchval(_RECORD, message_id, flow_id, node_id, outputs, logs):
            return outputs
        stored: dict[str, Any] = await pool.fetchval(_OUTPUTS, message_id) or {}
        return stored

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
