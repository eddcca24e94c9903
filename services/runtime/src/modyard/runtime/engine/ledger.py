"""The record of node executions, on a plain asyncpg pool.

This is the worker's hot path: one lookup and one insert per node execution. Going around the ORM
here (and only here), and sending the concurrent executions' lookups and inserts as one statement
each (:mod:`~modyard.runtime.engine.batching`), is what lets one process run well over a thousand
node executions per second; asyncpg prepares the statements once per connection.

The lookups have a connection of their own, on which PostgreSQL plans each lookup for its ids
(``plan_cache_mode = force_custom_plan``). With the cached generic plan, a connection that first
looked when the table had never been analyzed (a fresh install; the benchmark's fresh database)
kept a sequential scan, made for the ten pages PostgreSQL assumes of such a table, until the
first autovacuum ANALYZE replanned it: up to a minute of lookups reading the whole growing table
(4x the database's CPU per execution in some of the benchmark's first runs; 5.4 ms instead of
0.2 ms per lookup at 30,000 rows). Planning a lookup costs the server about 12 µs a statement;
the record statements keep their generic plan (a custom one costs 85-160 µs each, and they have
no scan to choose).

Each statement is a CLIENT span (``SELECT node_executions``, ``INSERT node_executions``) when one
of the executions it serves is in a sampled trace: a child of the first such execution, linked to
the others (:func:`~modyard.common.observability.tracing.batched_statement`). Not asyncpg's
instrumentation: it patches every asyncpg connection of the process, SQLAlchemy's too, whose
statements the engine's own instrumentation already traces, and it would parent a batch to
whichever execution happened to start the batcher's task.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from sqlalchemy.engine import make_url

from modyard.common.db.raw_connections import CONNECTION_ERRORS, asyncpg_dsn, keep_session
from modyard.common.observability import tracing
from modyard.common.settings import ServiceSettings
from modyard.runtime.engine.batching import ItemFailed, MicroBatcher
from modyard.runtime.webhooks.payloads import ALL_EVENTS
from modyard.runtime.webhooks.service import enqueue_many

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext


_LOOKUP = "SELECT message_id, outputs FROM node_executions WHERE message_id = ANY($1::text[])"
# One statement, so atomic without an explicit transaction: each success is recorded with its
# log lines, and the lines are written only for the successes this statement recorded (a message
# another delivery recorded first keeps that delivery's lines).
_RECORD_CTES = """
WITH recorded AS (
    INSERT INTO node_executions (message_id, flow_id, node_id, outputs)
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[])
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id
), logged AS (
    INSERT INTO node_logs (flow_id, node_id, message_id, entry)
    SELECT line.flow_id, line.node_id, line.message_id, line.entry
    FROM unnest($5::text[], $6::uuid[], $7::text[], $8::jsonb[]) WITH ORDINALITY
        AS line(message_id, flow_id, node_id, entry, position)
    JOIN recorded USING (message_id)
    ORDER BY line.position
)"""
_RECORD = _RECORD_CTES + "\nSELECT message_id FROM recorded"
# The same with the failures' webhook notices in flight ($9-$13, webhooks.service.enqueue_many):
# a notice rides on the statement the worker sends anyway instead of a round trip of its own
# (a statement costs the runtime about 200 µs of CPU whatever its size; failures, fewer than
# successes, made batches of one or two notices). A NULL row per delivery enqueued.
_RECORD_AND_NOTIFY = (
    _RECORD_CTES  # noqa: S608 - constant text (enqueue_many formats parameter numbers only)
    + ", notified AS ("
    + enqueue_many(9)
    + "    RETURNING 1\n)\nSELECT message_id FROM recorded UNION ALL SELECT NULL FROM notified"
)


@dataclass(frozen=True, slots=True)
class Notice:
    """A system webhook event's payload (webhooks.payloads.build_payload) to enqueue."""

    event: str
    payload: dict[str, Any]
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Success:
    message_id: str
    flow_id: uuid.UUID
    node_id: str
    outputs: dict[str, Any]
    logs: list[Any]
    #: The execution's span, if its trace is sampled (the statement's parent or link).
    caller: SpanContext | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    #: What to send on: this call's outputs, or those of the delivery that recorded them first.
    outputs: dict[str, Any]
    #: This call recorded them: nobody can have sent the node's outputs on before, so the
    #: messages derived from them are new (no ledger lookup needed before running them).
    fresh: bool


@dataclass(frozen=True, slots=True)
class Lookup:
    message_id: str
    caller: SpanContext | None = None


async def _json_codec(connection: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await connection.set_type_codec(
            kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


class ExecutionLedger:
    def __init__(self, settings: ServiceSettings, *, max_size: int) -> None:
        url = make_url(settings.database_url)
        self._server = {
            "db.namespace": url.database or "",
            "server.address": url.host or "",
            "server.port": url.port or 5432,
        }
        self._dsn = asyncpg_dsn(settings.database_url)
        self._schema = settings.db_schema
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        #: The lookups' own connection (one batch in flight), planned per statement.
        self._lookup_pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        # One statement of each kind in flight: with two, the second started as soon as one item
        # waited, and batches under load averaged 2.3 items (bench runtime, 2026-12-06); a
        # statement costs the runtime about 200 µs of CPU whatever its size (1 item: 447 µs per
        # execution for lookup and record, 8 items: 67 µs). An idle worker still sends at once.
        self._lookups: MicroBatcher[Lookup, dict[str, Any] | None] = MicroBatcher(
            self._lookup, in_flight=1
        )
        # Successes and failures' notices share the statement (_RECORD_AND_NOTIFY).
        self._records: MicroBatcher[Success | Notice, Recorded | int] = MicroBatcher(
            self._record, in_flight=1
        )

    def _open(self, max_size: int, **settings: str) -> asyncpg.Pool:
        return asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=max_size,
            init=_json_codec,
            reset=keep_session,
            server_settings={
                "search_path": self._schema,
                "application_name": "modyard-runtime-worker",
                **settings,
            },
        )

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await self._open(self._max_size)
        return self._pool

    async def _lookup_connections(self) -> asyncpg.Pool:
        if self._lookup_pool is None:
            async with self._opening:
                if self._lookup_pool is None:
                    # A generic plan made while the table looked empty would stay a sequential
                    # scan until the first ANALYZE (module docstring).
                    self._lookup_pool = await self._open(1, plan_cache_mode="force_custom_plan")
        return self._lookup_pool

    async def _fetch(
        self,
        operation: str,
        query: str,
        *args: Any,
        callers: Sequence[SpanContext | None] = (),
        lookup: bool = False,
    ) -> list[asyncpg.Record]:
        pool = await (self._lookup_connections() if lookup else self._connections())
        with tracing.batched_statement(
            operation, "node_executions", query, callers, attributes=self._server
        ):
            try:
                return list(await pool.fetch(query, *args))
            except CONNECTION_ERRORS:
                # After a database restart every pooled connection is dead or (asyncpg's
                # protocol state) unusable: replace them all on their next use instead of
                # failing on each.
                await pool.expire_connections()
                raise

    async def outputs(self, message_id: str) -> dict[str, Any] | None:
        """What the node produced for this message, if it already ran it successfully."""
        return await self._lookups.submit(Lookup(message_id, tracing.sampled_span_context()))

    async def record(
        self,
        *,
        message_id: str,
        flow_id: uuid.UUID,
        node_id: str,
        outputs: dict[str, Any],
        logs: list[Any],
    ) -> Recorded:
        """Record the success with its log lines; returns the outputs to send on (the first
        recorded ones if another delivery of the same message won the race), and whether this
        call recorded them."""
        # A Success's result is its Recorded (_record), a Notice's its count.
        return cast(
            Recorded,
            await self._records.submit(
                Success(message_id, flow_id, node_id, outputs, logs, tracing.sampled_span_context())
            ),
        )

    async def notify(self, notice: Notice) -> int:
        """Enqueue the event for every active webhook subscribed to it (or to every event);
        how many deliveries that made. Committed when this returns. Nothing to roll back with:
        the worker's failure path has no transaction, so the notice goes in the next statement
        recording the successes in flight (one alone when there are none)."""
        return cast(int, await self._records.submit(notice))

    async def _lookup(self, lookups: Sequence[Lookup]) -> list[dict[str, Any] | None]:
        rows = await self._fetch(
            "SELECT",
            _LOOKUP,
            list({lookup.message_id for lookup in lookups}),
            callers=[lookup.caller for lookup in lookups],
            lookup=True,
        )
        found: dict[str, dict[str, Any]] = {row["message_id"]: row["outputs"] for row in rows}
        return [found.get(lookup.message_id) for lookup in lookups]

    async def _record(self, items: Sequence[Success | Notice]) -> list[Recorded | int | ItemFailed]:
        try:
            return list(await self._record_together(items))
        except asyncpg.exceptions.DataError:
            # One item's data the database refuses (a NUL character in a string, SQLSTATE class
            # 22) fails the whole statement. The items of a batch are other messages, other
            # workspaces' too: each goes again alone, so the refusal reaches its own caller only.
            if len(items) == 1:
                raise
        answers: list[Recorded | int | ItemFailed] = []
        for item in items:
            try:
                answers.extend(await self._record_together([item]))
            except asyncpg.exceptions.DataError as exc:
                answers.append(ItemFailed(exc))
        return answers

    async def _record_together(self, items: Sequence[Success | Notice]) -> list[Recorded | int]:
        successes = [item for item in items if isinstance(item, Success)]
        notices = [item for item in items if isinstance(item, Notice)]
        # Two deliveries of one message in one batch: the first is recorded, the other gets its
        # outputs, exactly as if it had lost the race in a later statement.
        first: dict[str, Success] = {}
        for success in successes:
            first.setdefault(success.message_id, success)
        unique = list(first.values())
        lines = [(success, entry) for success in unique for entry in success.logs]
        arguments: list[Any] = [
            [success.message_id for success in unique],
            [success.flow_id for success in unique],
            [success.node_id for success in unique],
            [success.outputs for success in unique],
            [success.message_id for success, _ in lines],
            [success.flow_id for success, _ in lines],
            [success.node_id for success, _ in lines],
            [entry for _, entry in lines],
        ]
        if notices:
            arguments += [
                [notice.event for notice in notices],
                [notice.payload["id"] for notice in notices],
                [notice.payload for notice in notices],
                [notice.trace_context for notice in notices],
                ALL_EVENTS,
            ]
        rows = await self._fetch(
            "INSERT",
            _RECORD_AND_NOTIFY if notices else _RECORD,
            *arguments,
            callers=[success.caller for success in unique],
        )
        recorded = {row["message_id"] for row in rows if row["message_id"] is not None}
        # The statement cannot tell which notice a delivery came from; what matters to the
        # caller is whether anything was enqueued (to wake the deliverer).
        enqueued = len(rows) - len(recorded)
        stored: dict[str, dict[str, Any]] = {}
        if missed := [key for key in first if key not in recorded]:
            # Recorded before, by another delivery: send on what that delivery produced.
            callers = [first[key].caller for key in missed]
            for row in await self._fetch("SELECT", _LOOKUP, missed, callers=callers):
                stored[row["message_id"]] = row["outputs"]
        return [
            enqueued
            if isinstance(item, Notice)
            else Recorded(first[item.message_id].outputs, fresh=True)
            if item.message_id in recorded and first[item.message_id] is item
            else Recorded(
                first[item.message_id].outputs
                if item.message_id in recorded
                else stored.get(item.message_id, {}),
                fresh=False,
            )
            for item in items
        ]

    async def close(self) -> None:
        await self._lookups.close()
        await self._records.close()
        for pool in (self._pool, self._lookup_pool):
            if pool is not None:
                await pool.close()
        self._pool = self._lookup_pool = None
