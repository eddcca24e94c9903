"""The execution ledger's group commit: concurrent lookups and records as single statements, the
same answers as one by one. The batcher's logic alone, then the ledger on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate
from modyard.runtime.engine.batching import MicroBatcher
from modyard.runtime.engine.ledger import ExecutionLedger, Notice, Recorded
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.webhooks.payloads import ALL_EVENTS, COMPONENT_ERROR, MESSAGE_UNPROCESSED
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "modyard" / "runtime" / "migrations"


async def test_concurrent_submissions_share_statements_and_get_their_own_results() -> None:
    batches: list[list[int]] = []
    first_sent = asyncio.Event()

    async def double(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        first_sent.set()
        await asyncio.sleep(0.01)  # a round trip, during which the next ones queue up
        return [item * 2 for item in items]

    batcher = MicroBatcher(double, in_flight=1)
    alone = asyncio.ensure_future(batcher.submit(0))
    await first_sent.wait()  # the first goes at once: an idle worker waits for nobody
    results = await asyncio.gather(alone, *(batcher.submit(n) for n in range(1, 100)))
    assert results == [n * 2 for n in range(100)]
    # The other 99 queued while the first was in flight and went together.
    assert batches == [[0], list(range(1, 100))]


async def test_a_failing_batch_fails_its_callers_only() -> None:
    calls = 0

    async def flaky(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise ConnectionError("database gone")
        return list(items)

    batcher = MicroBatcher(flaky, in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    with pytest.raises(ConnectionError):
        await first
    assert await batcher.submit(2) == 2


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    release = asyncio.Event()

    async def slow(items: Sequence[int]) -> list[int]:
        await release.wait()
        return list(items)

    batcher = MicroBatcher(slow, in_flight=1)
    gone = asyncio.ensure_future(batcher.submit(1))
    stays = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await stays == 2
    assert gone.cancelled()
    await batcher.close()


# --- the ledger on PostgreSQL ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def ledger(infra: IsolatedInfra) -> AsyncIterator[tuple[ExecutionLedger, Database]]:
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="ledger_test"
    )
    database = Database(settings)
    await migrate(database, MIGRATIONS)
    ledger = ExecutionLedger(settings, max_size=4)
    yield ledger, database
    await ledger.close()
    await database.dispose()


@pytest.mark.infra
async def test_records_and_lookups_in_one_batch_answer_as_one_by_one(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    executions, database = ledger
    flow_id = uuid.uuid4()
    ids = [uuid.uuid4().hex for _ in range(50)]
    outputs = await asyncio.gather(
        *(
            executions.record(
                message_id=message_id,
                flow_id=flow_id,
                node_id="sink",
                outputs={"out": [{"n": n}]},
                logs=[{"line": 1, "n": n}, {"line": 2, "n": n}],
            )
            for n, message_id in enumerate(ids)
        )
    )
    assert [recorded.outputs for recorded in outputs] == [{"out": [{"n": n}]} for n in range(50)]
    assert all(recorded.fresh for recorded in outputs)
    found = await asyncio.gather(*(executions.outputs(message_id) for message_id in ids))
    assert found == [recorded.outputs for recorded in outputs]
    assert await executions.outputs(uuid.uuid4().hex) is None
    async with database.transaction() as session:
        lines = (
            await session.execute(
                text("SELECT message_id, entry FROM node_logs WHERE flow_id = :f ORDER BY id"),
                {"f": flow_id},
            )
        ).all()
    assert len(lines) == 100
    # Each message's lines in the order the node logged them.
    for message_id in ids:
        mine = [entry["line"] for recorded_id, entry in lines if recorded_id == message_id]
        assert mine == [1, 2]


@pytest.mark.infra
async def test_a_second_delivery_gets_the_first_outputs_and_logs_nothing(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    executions, database = ledger
    flow_id = uuid.uuid4()
    message_id = uuid.uuid4().hex

    async def deliver(attempt: int) -> Recorded:
        return await executions.record(
            message_id=message_id,
            flow_id=flow_id,
            node_id="sink",
            outputs={"out": [{"attempt": attempt}]},
            logs=[{"attempt": attempt}],
        )

    # Two deliveries in the same batch, then a third in a later statement.
    same_batch = await asyncio.gather(deliver(1), deliver(2))
    later = await deliver(3)
    assert [recorded.outputs for recorded in same_batch] == [{"out": [{"attempt": 1}]}] * 2
    assert later.outputs == {"out": [{"attempt": 1}]}
    # Only the delivery that recorded them may take its children for new messages.
    assert [recorded.fresh for recorded in (*same_batch, later)] == [True, False, False]
    async with database.transaction() as session:
        entries = (
            await session.scalars(
                text("SELECT entry FROM node_logs WHERE flow_id = :f"), {"f": flow_id}
            )
        ).all()
    assert entries == [{"attempt": 1}]


@pytest.mark.infra
async def test_failure_notices_reach_every_active_subscriber_in_one_statement(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    executions, database = ledger
    async with database.transaction() as session:
        for events, active in (
            ([COMPONENT_ERROR], True),
            ([ALL_EVENTS], True),
            ([COMPONENT_ERROR], False),  # paused: gets nothing
            ([MESSAGE_UNPROCESSED], True),  # another event: gets nothing
        ):
            await session.execute(
                text(
                    "INSERT INTO system_webhooks (id, url, events, secret, active, created_by) "
                    "VALUES (:id, 'http://127.0.0.1:9/hook', :events, 'x', :active, 'test')"
                ),
                {"id": uuid.uuid4(), "events": events, "active": active},
            )
    notices = [
        Notice(
            COMPONENT_ERROR,
            {"id": str(uuid.uuid4()), "event": COMPONENT_ERROR, "data": {"n": n}},
            {"traceparent": f"00-{n:032x}-{n:016x}-01"} if n else None,
        )
        for n in range(3)
    ]
    counts = await asyncio.gather(*(executions.notify(notice) for notice in notices))
    assert all(count > 0 for count in counts)
    async with database.transaction() as session:
        rows = (
            await session.execute(
                text(
                    "SELECT d.event_id::text, d.payload, d.trace_context, w.events "
                    "FROM webhook_deliveries d JOIN system_webhooks w ON w.id = d.webhook_id"
                )
            )
        ).all()
    # Each notice once per active subscriber of its event (the named one and the "*" one).
    assert sorted((row[0], tuple(row[3])) for row in rows) == sorted(
        (notice.payload["id"], tuple(events))
        for notice in notices
        for events in ([COMPONENT_ERROR], [ALL_EVENTS])
    )
    by_id = {row[0]: row for row in rows}
    for notice in notices:
        assert by_id[notice.payload["id"]][1] == notice.payload
        assert by_id[notice.payload["id"]][2] == notice.trace_context


@pytest.mark.infra
async def test_lookups_use_the_index_on_a_table_that_grew_from_empty_before_any_analyze(
    infra: IsolatedInfra,
) -> None:
    """A fresh install: the worker's first lookups find the ledger empty and never analyzed. A
    cached generic plan made then is a sequential scan (PostgreSQL assumes ten pages of such a
    table), kept until autovacuum's first ANALYZE, reading the whole growing table on every
    lookup. The lookups are planned for their ids instead: none reads the table through."""
    settings = RuntimeSettings(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        db_schema=f"ledger_fresh_{uuid.uuid4().hex[:8]}",
    )
    database = Database(settings)
    await migrate(database, MIGRATIONS)
    ledger = ExecutionLedger(settings, max_size=4)
    stats = text(
        "SELECT seq_scan, seq_tup_read, idx_scan FROM pg_stat_user_tables "
        "WHERE schemaname = :schema AND relname = 'node_executions'"
    )
    try:
        async with database.transaction() as session:
            started = (await session.execute(text("SELECT now()"))).scalar_one()
        flow_id = uuid.uuid4()
        # More lookups than the five custom plans PostgreSQL makes before it may cache a plan.
        for _ in range(10):
            assert (
                await asyncio.gather(*(ledger.outputs(uuid.uuid4().hex) for _ in range(8)))
                == [None] * 8
            )
        # Grown past what a sequential scan is the right plan for (a few thousand rows).
        ids = [uuid.uuid4().hex for _ in range(12_000)]
        await asyncio.gather(
            *(
                ledger.record(
                    message_id=message_id, flow_id=flow_id, node_id="n", outputs={}, logs=[]
                )
                for message_id in ids
            )
        )
        for offset in range(0, 80, 8):
            found = await asyncio.gather(*(ledger.outputs(i) for i in ids[offset : offset + 8]))
            assert found == [{}] * 8
    finally:
        await ledger.close()
    try:
        # A backend's table counts are complete once it has exited (it reports them then).
        async def gone() -> bool:
            async with database.transaction() as session:  # a new snapshot of the activity
                return not (
                    await session.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE backend_start >= :s "
                            "AND application_name = 'modyard-runtime-worker'"
                        ),
                        {"s": started},
                    )
                ).scalar_one()

        await eventually(gone)
        async with database.transaction() as session:
            scans = (await session.execute(stats, {"schema": settings.db_schema})).one()
    finally:
        await database.dispose()
    assert scans.idx_scan > 0
    assert scans.seq_tup_read == 0, scans


async def _subscribe(database: Database, events: list[str]) -> uuid.UUID:
    """An operator's webhook subscribed to ``events`` (its URL is never called here)."""
    webhook = uuid.uuid4()
    async with database.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO system_webhooks (id, url, events, secret, active, created_by) "
                "VALUES (:id, 'http://127.0.0.1:9/hook', :events, 'x', true, 'test')"
            ),
            {"id": webhook, "events": events},
        )
    return webhook


@pytest.mark.infra
async def test_notices_ride_on_the_statement_recording_the_successes_in_flight(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    """A failure's notice and the successes in flight go in one statement: each gets its own
    answer (the successes recorded, their lines written, the notice enqueued for its
    subscribers), as if each had gone alone."""
    executions, database = ledger
    webhook = await _subscribe(database, [COMPONENT_ERROR])
    flow_id = uuid.uuid4()
    ids = [uuid.uuid4().hex for _ in range(6)]
    notices = [
        Notice(COMPONENT_ERROR, {"id": str(uuid.uuid4()), "event": COMPONENT_ERROR, "n": n})
        for n in range(3)
    ]

    def success(n: int, message_id: str) -> Any:
        return executions.record(
            message_id=message_id,
            flow_id=flow_id,
            node_id="call",
            outputs={"out": [{"n": n}]},
            logs=[{"n": n}],
        )

    # The first record goes alone; the rest (successes, a second delivery of one of them and
    # the notices) queue behind it and go together.
    answers = await asyncio.gather(
        *(success(n, message_id) for n, message_id in enumerate(ids)),
        success(99, ids[1]),
        *(executions.notify(notice) for notice in notices),
    )
    recorded = answers[: len(ids) + 1]
    counts = answers[len(ids) + 1 :]
    assert [r.outputs for r in recorded] == [
        *({"out": [{"n": n}]} for n in range(len(ids))),
        {"out": [{"n": 1}]},  # the second delivery gets the first one's outputs
    ]
    assert [r.fresh for r in recorded] == [True] * len(ids) + [False]
    assert all(isinstance(count, int) and count > 0 for count in counts)
    async with database.transaction() as session:
        delivered = (
            await session.execute(
                text(
                    "SELECT event_id::text, payload FROM webhook_deliveries WHERE webhook_id = :w"
                ),
                {"w": webhook},
            )
        ).all()
        logged = (
            await session.scalars(
                text("SELECT entry FROM node_logs WHERE flow_id = :f ORDER BY id"), {"f": flow_id}
            )
        ).all()
    assert sorted(row[0] for row in delivered) == sorted(n.payload["id"] for n in notices)
    assert {row[0]: row[1] for row in delivered} == {n.payload["id"]: n.payload for n in notices}
    assert sorted(entry["n"] for entry in logged) == list(range(len(ids)))


@pytest.mark.infra
async def test_a_notice_beside_a_record_is_enqueued_for_exactly_its_subscribers(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    executions, database = ledger
    event_id = str(uuid.uuid4())
    # trigger.recovered: only the "*" webhooks this module's other tests made (if any) want it.
    notice = Notice("trigger.recovered", {"id": event_id, "event": "trigger.recovered"})
    subscribers = text(
        "SELECT count(*) FROM system_webhooks "
        "WHERE active AND events && ARRAY['trigger.recovered', '*']::varchar[]"
    )
    async with database.transaction() as session:
        wanted = await session.scalar(subscribers)
    message_id = uuid.uuid4().hex
    recorded, count = await asyncio.gather(
        executions.record(
            message_id=message_id, flow_id=uuid.uuid4(), node_id="n", outputs={}, logs=[]
        ),
        executions.notify(notice),
    )
    assert count == wanted
    assert recorded.fresh
    assert await executions.outputs(message_id) == {}
    async with database.transaction() as session:
        enqueued = await session.scalar(
            text("SELECT count(*) FROM webhook_deliveries WHERE event_id = :e"), {"e": event_id}
        )
    assert enqueued == wanted


@pytest.mark.infra
async def test_a_webhook_deleted_while_a_notice_is_enqueued_fails_nothing_recorded_beside_it(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    """An operator deletes a subscriber while failures are being noticed: the statement waits
    for the delete, skips that webhook and records the successes it carries (a foreign key
    violation there would fail them all)."""
    executions, database = ledger
    webhook = await _subscribe(database, ["flow.stopped"])
    event_id = str(uuid.uuid4())
    message_id = uuid.uuid4().hex
    async with database.transaction() as deleting:
        await deleting.execute(text("DELETE FROM system_webhooks WHERE id = :id"), {"id": webhook})
        both = asyncio.gather(
            executions.record(
                message_id=message_id, flow_id=uuid.uuid4(), node_id="n", outputs={}, logs=[]
            ),
            executions.notify(Notice("flow.stopped", {"id": event_id, "event": "flow.stopped"})),
        )

        async def waiting_for_the_delete() -> bool:
            async with database.transaction() as session:
                waits = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database() "
                        "AND application_name = 'modyard-runtime-worker'"
                    )
                )
            return bool(waits)

        await eventually(waiting_for_the_delete, timeout=10)
    recorded, _ = await both
    assert recorded.fresh
    assert await executions.outputs(message_id) == {}
    async with database.transaction() as session:
        assert (
            await session.scalar(
                text(
                    "SELECT count(*) FROM webhook_deliveries WHERE event_id = :e AND webhook_id = :w"
                ),
                {"e": event_id, "w": webhook},
            )
        ) == 0


@pytest.mark.infra
async def test_data_the_database_refuses_fails_its_own_record_and_none_beside_it(
    ledger: tuple[ExecutionLedger, Database],
) -> None:
    """Outputs with a NUL character (valid JSON, refused by jsonb) in the same statement as other
    messages' successes: those are recorded, the refusal reaches its own caller only."""
    executions, _ = ledger
    flow_id = uuid.uuid4()

    def record(message_id: str, outputs: dict[str, Any]) -> Any:
        return executions.record(
            message_id=message_id, flow_id=flow_id, node_id="n", outputs=outputs, logs=[]
        )

    first, beside, refused = (f"{name}-{uuid.uuid4().hex}" for name in ("a", "b", "c"))
    # The first goes alone; the next two wait for it and share the next statement.
    results = await asyncio.gather(
        record(first, {"out": [1]}),
        record(beside, {"out": [2]}),
        record(refused, {"out": ["before\x00after"]}),
        return_exceptions=True,
    )
    assert results[0] == Recorded({"out": [1]}, fresh=True)
    assert results[1] == Recorded({"out": [2]}, fresh=True)
    assert isinstance(results[2], asyncpg.exceptions.UntranslatableCharacterError)
    assert await executions.outputs(beside) == {"out": [2]}
    assert await executions.outputs(refused) is None
