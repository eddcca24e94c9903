"""The webhook deliverer against real PostgreSQL and real HTTP receivers on 127.0.0.1:
signatures, retries with backoff, give-up after the last attempt, and never blocking or raising."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from modyard.common.db.database import Database
from modyard.common.secrets import SecretBox
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.webhooks import notify, verify_signature
from modyard.runtime.webhooks.delivery import WebhookDeliverer
from modyard.runtime.webhooks.models import SystemWebhook, WebhookDelivery
from modyard.runtime.webhooks.payloads import (
    EXAMPLES,
    FLOW_STOPPED,
    MESSAGE_UNPROCESSED,
    TRIGGER_FAILING,
    TRIGGER_RECOVERED,
)
from modyard.runtime.webhooks.schemas import WebhookCreate
from modyard.runtime.webhooks.service import create_webhook
from modyard.runtime.webhooks.signing import compute_signature
from modyard.testing.infra import IsolatedInfra
from modyard.testing.runtime_webhooks import WebhookReceiver, create_webhook_tables
from modyard.testing.services import free_port

pytestmark = pytest.mark.infra

SECRET = "whsec-delivery-test-0123456789"
BOX = SecretBox([SecretBox.generate_key()])


@pytest.fixture(scope="module")
async def database(infra: IsolatedInfra) -> AsyncIterator[Database]:
    settings = RuntimeSettings(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        db_schema="webhooks_delivery_test",
    )
    database = Database(settings)
    await create_webhook_tables(database)
    yield database
    await database.dispose()


@pytest.fixture(autouse=True)
async def empty_tables(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(text("TRUNCATE system_webhooks, webhook_deliveries"))


@pytest.fixture
async def deliverers(database: Database) -> AsyncIterator[Callable[..., WebhookDeliverer]]:
    made: list[WebhookDeliverer] = []

    def make(secrets: SecretBox = BOX, **options: Any) -> WebhookDeliverer:
        options = {"poll_interval": 0.05, "backoff_base": 0.05, "timeout": 2.0, **options}
        deliverer = WebhookDeliverer(database, secrets, **options)
        made.append(deliverer)
        return deliverer

    yield make
    for deliverer in made:
        await deliverer.aclose()


async def subscribe(
    database: Database, url: str, events: list[str], secret: str = SECRET
) -> SystemWebhook:
    async with database.transaction() as session:
        return await create_webhook(
            session,
            WebhookCreate(url=url, events=events, secret=secret),
            BOX,
            created_by="test",
        )


async def send(database: Database, event: str, data: dict[str, Any] | None = None) -> int:
    async with database.transaction() as session:
        return await notify(session, event, data if data is not None else EXAMPLES[event])


async def deliveries(database: Database) -> list[WebhookDelivery]:
    async with database.transaction() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        return list((await session.scalars(query)).all())


async def until(
    condition: Callable[[], Awaitable[bool]], *, step: Callable[[], Awaitable[Any]] | None = None
) -> None:
    """Repeat ``step`` until ``condition`` holds (10 s at most)."""
    deadline = time.monotonic() + 10
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in 10 s"
        if step is not None:
            await step()
        await asyncio.sleep(0.02)


def test_signature_verification_refuses_tampering_other_secrets_and_old_timestamps() -> None:
    body = b'{"event":"flow.stopped"}'
    now = int(time.time())
    header = compute_signature(SECRET, now, body)
    assert verify_signature(SECRET, str(now), body, header)
    assert verify_signature(SECRET, now, body.decode(), header)
    assert not verify_signature("another-secret-of-16+", now, body, header)
    assert not verify_signature(SECRET, now, body + b" ", header)
    assert not verify_signature(SECRET, now + 1, body, header)
    assert not verify_signature(SECRET, now, body, None)
    assert not verify_signature(SECRET, "yesterday", body, header)
    old = now - 3600
    stale = compute_signature(SECRET, old, body)
    assert not verify_signature(SECRET, old, body, stale)
    assert verify_signature(SECRET, old, body, stale, tolerance_seconds=None)


async def test_secrets_are_stored_encrypted_and_one_no_key_opens_is_never_sent_unsigned(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    async with WebhookReceiver() as receiver:
        webhook = await subscribe(database, receiver.url, [FLOW_STOPPED])
        assert webhook.secret != SECRET
        assert BOX.decrypt(webhook.secret).decode() == SECRET
        await send(database, FLOW_STOPPED)
        # The runtime's keys were replaced without keeping the old one.
        rotated_away = deliverers(SecretBox([SecretBox.generate_key()]))
        assert await rotated_away.deliver_once() == 1
    assert receiver.requests == []
    (delivery,) = await deliveries(database)
    assert delivery.last_status_code is None
    assert "MODYARD_RUNTIME_SECRET_KEYS" in (delivery.last_error or "")


async def test_a_delivery_is_posted_signed_and_recorded_as_delivered(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    async with WebhookReceiver() as receiver:
        await subscribe(database, receiver.url, [FLOW_STOPPED])
        assert await send(database, FLOW_STOPPED) == 1
        assert receiver.requests == []  # enqueueing sends nothing by itself

        assert await deliverers().deliver_once() == 1

    (request,) = receiver.requests
    (delivery,) = await deliveries(database)
    assert request.method == "POST"
    assert request.path == "/hooks"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-modyard-event"] == FLOW_STOPPED
    assert request.headers["x-modyard-delivery"] == str(delivery.id)
    assert request.headers["x-modyard-event-id"] == str(delivery.event_id)
    timestamp = request.headers["x-modyard-timestamp"]
    assert abs(int(timestamp) - time.time()) < 30
    # The documented scheme, recomputed by hand: HMAC-SHA256(secret, "<timestamp>.<body>").
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["x-modyard-signature"] == f"sha256={expected}"
    assert verify_signature(SECRET, timestamp, request.body, request.headers["x-modyard-signature"])
    assert not request.signed_with("not-the-secret-0000")

    body = json.loads(request.body)
    assert body == delivery.payload
    assert body["event"] == FLOW_STOPPED
    assert body["id"] == str(delivery.event_id)
    assert body["data"]["flow"] == EXAMPLES[FLOW_STOPPED]["flow"]
    assert datetime.fromisoformat(body["created_at"]).tzinfo is not None

    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    assert delivery.last_status_code == 200
    assert delivery.last_error is None
    assert delivery.delivered_at is not None


async def test_a_failing_receiver_is_retried_with_backoff_until_it_accepts(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    deliverer = deliverers(backoff_base=0.3)
    async with WebhookReceiver() as receiver:
        receiver.fail_next(1, status=503)
        receiver.fail_next(1, status=0)  # the connection dropped without an answer
        await subscribe(database, receiver.url, [MESSAGE_UNPROCESSED])
        await send(database, MESSAGE_UNPROCESSED)

        async def delivered() -> bool:
            return (await deliveries(database))[0].status == "delivered"

        await until(delivered, step=deliverer.deliver_once)

    (delivery,) = await deliveries(database)
    assert delivery.attempts == 3
    assert delivery.last_status_code == 200
    log = delivery.attempt_log
    assert [entry["attempt"] for entry in log] == [1, 2, 3]
    assert [entry["status_code"] for entry in log] == [503, None, 200]
    assert log[0]["error"].startswith("HTTP 503")
    assert log[1]["error"]  # what the transport said about the dropped connection
    assert log[2]["retry_at"] is None
    # The schedule doubles, jittered below its ceiling: up to 0.3 s after the first failure, up
    # to 0.6 s after the second, never less than 80 % of that (modyard.common.backoff).
    waits = [
        (datetime.fromisoformat(e["retry_at"]) - datetime.fromisoformat(e["at"])).total_seconds()
        for e in log[:2]
    ]
    for wait, ceiling in zip(waits, (0.3, 0.6), strict=True):
        assert 0.8 * ceiling - 0.01 <= wait <= ceiling + 0.01
    times = [request.received_at for request in receiver.requests]
    assert times[1] - times[0] >= waits[0] - 0.05
    assert times[2] - times[1] >= waits[1] - 0.05
    assert [r.headers["x-modyard-attempt"] for r in receiver.requests] == ["1", "2", "3"]
    # Every attempt is the same delivery of the same event, freshly signed.
    assert {r.headers["x-modyard-delivery"] for r in receiver.requests} == {str(delivery.id)}
    assert {r.body for r in receiver.requests} == {receiver.requests[0].body}
    assert all(request.signed_with(SECRET) for request in receiver.requests)


async def test_an_unreachable_receiver_ends_failed_after_max_attempts_and_the_worker_runs_on(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    await subscribe(database, f"http://127.0.0.1:{free_port()}/nobody-home", ["*"])
    await send(database, TRIGGER_FAILING)
    deliverer = deliverers(max_attempts=3, backoff_base=0.05)

    async with deliverer.running():

        async def failed() -> bool:
            return (await deliveries(database))[0].status == "failed"

        await until(failed)
        (delivery,) = await deliveries(database)
        assert delivery.attempts == 3
        assert delivery.last_status_code is None
        assert delivery.last_error is not None
        assert "Cannot connect" in delivery.last_error
        assert [entry["attempt"] for entry in delivery.attempt_log] == [1, 2, 3]

        # Still running: a new event for a receiver that now answers is delivered.
        async with WebhookReceiver() as receiver:
            await subscribe(database, receiver.url, [TRIGGER_RECOVERED])
            await send(database, TRIGGER_RECOVERED)
            await receiver.wait_for(1)

    assert await deliverer.deliver_once() == 0  # failed deliveries are never tried again


async def test_only_subscribed_events_are_delivered_and_star_gets_everything(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    async with WebhookReceiver() as failing_only, WebhookReceiver() as everything:
        await subscribe(database, failing_only.url, [TRIGGER_FAILING])
        await subscribe(database, everything.url, ["*"])
        assert await send(database, TRIGGER_RECOVERED) == 1
        assert await send(database, TRIGGER_FAILING) == 2
        deliverer = deliverers()
        while await deliverer.deliver_once():
            pass

    assert [r.headers["x-modyard-event"] for r in failing_only.requests] == [TRIGGER_FAILING]
    assert sorted(r.headers["x-modyard-event"] for r in everything.requests) == sorted(
        [TRIGGER_RECOVERED, TRIGGER_FAILING]
    )


async def test_a_rolled_back_notify_delivers_nothing(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    async with WebhookReceiver() as receiver:
        await subscribe(database, receiver.url, ["*"])

        async def stop_flow_then_fail() -> None:
            async with database.transaction() as session:
                assert await notify(session, FLOW_STOPPED, EXAMPLES[FLOW_STOPPED]) == 1
                raise RuntimeError("flow stop failed")

        with pytest.raises(RuntimeError, match="flow stop failed"):
            await stop_flow_then_fail()
        assert await deliverers().deliver_once() == 0
    assert receiver.requests == []
    assert await deliveries(database) == []


async def test_a_commit_wakes_the_deliverer_without_waiting_for_its_poll(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    deliverer = deliverers(poll_interval=60)
    async with WebhookReceiver() as receiver, deliverer.running():
        await subscribe(database, receiver.url, [FLOW_STOPPED])
        await asyncio.sleep(0.1)  # the deliverer's first pass found nothing and now sleeps
        started = time.monotonic()
        await send(database, FLOW_STOPPED)
        await receiver.wait_for(1, timeout=5)
        assert time.monotonic() - started < 5


async def test_notify_never_waits_for_a_slow_receiver(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    # A "receiver" that accepts connections and never answers.
    hung: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await subscribe(database, f"http://127.0.0.1:{port}/", ["*"])
        deliverer = deliverers(timeout=0.5, max_attempts=1)
        async with deliverer.running():
            started = time.monotonic()
            for _ in range(5):
                await send(database, FLOW_STOPPED)
            assert time.monotonic() - started < 2  # enqueueing is a few inserts, no HTTP

            async def all_failed() -> bool:
                rows = await deliveries(database)
                return len(rows) == 5 and all(row.status == "failed" for row in rows)

            await until(all_failed)
        rows = await deliveries(database)
        assert all("Timeout" in (row.last_error or "") for row in rows)
    finally:
        for writer in hung:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_concurrent_deliverers_share_the_work_without_sending_twice(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    async with WebhookReceiver() as receiver:
        await subscribe(database, receiver.url, ["*"])
        for _ in range(20):
            await send(database, TRIGGER_FAILING)
        first, second = deliverers(batch_size=7), deliverers(batch_size=7)
        while sum(await asyncio.gather(first.deliver_once(), second.deliver_once())):
            pass

    sent = [request.headers["x-modyard-delivery"] for request in receiver.requests]
    assert len(sent) == len(set(sent)) == 20
    assert {row.status for row in await deliveries(database)} == {"delivered"}


async def test_a_receivers_retry_after_lengthens_the_wait(
    database: Database, deliverers: Callable[..., WebhookDeliverer]
) -> None:
    async with WebhookReceiver() as receiver:
        receiver.fail_next(1, status=429, headers={"Retry-After": "7"})
        await subscribe(database, receiver.url, ["*"])
        await send(database, TRIGGER_FAILING)
        await deliverers(backoff_base=0.05).deliver_once()
    (delivery,) = await deliveries(database)
    entry = delivery.attempt_log[0]
    wait = datetime.fromisoformat(entry["retry_at"]) - datetime.fromisoformat(entry["at"])
    assert wait.total_seconds() == pytest.approx(7, abs=0.01)
