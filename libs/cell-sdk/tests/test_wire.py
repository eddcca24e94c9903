"""The lean AMQP connection (:mod:`modyard.cell.wire`) against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest

from modyard.cell.wire import (
    Delivery,
    MessageReturned,
    Properties,
    Wire,
    WireClosed,
    WireConnection,
)
from modyard.testing.broker_connections import close_connections_named
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra

WAIT = 3.0  # seconds any single wait may take before the test fails instead of hanging

Opener = Callable[..., Awaitable[WireConnection]]


def unique(prefix: str) -> str:
    return f"wire-test-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def connect(infra: IsolatedInfra) -> AsyncIterator[Opener]:
    """Opens connections on the session's vhost; aborts whatever a test left open."""
    opened: list[WireConnection] = []

    async def open_connection(**options: Any) -> WireConnection:
        options.setdefault("name", unique("conn"))
        async with asyncio.timeout(WAIT):
            connection = await WireConnection.open(infra.amqp_url, **options)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.abort()


def management(infra: IsolatedInfra) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
    )


class Inbox:
    """A consumer callback that collects deliveries for the test to await."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()

    def __call__(self, delivery: Delivery) -> None:
        self.queue.put_nowait(delivery)

    async def next(self, timeout: float = WAIT) -> Delivery:
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def nothing_for(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        assert self.queue.empty(), "a delivery arrived that should not have"


async def confirmed(future: asyncio.Future[None] | None) -> None:
    assert future is not None, "a connection with confirms returns a future"
    async with asyncio.timeout(WAIT):
        await future


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_published_message_reaches_the_consumer_with_its_properties(
    connect: Opener,
) -> None:
    connection = await connect()
    queue = await connection.declare_queue(unique("plain"), auto_delete=True)
    inbox = Inbox()
    await connection.consume(queue, inbox, no_ack=True)

    result = connection.publish(
        "",
        queue,
        b'{"hello": "world"}',
        Properties(
            correlation_id="corr-1",
            headers={"x-user": "alice", "x-attempt": 2},
            content_type="application/json",
        ),
    )

    assert result is None  # no confirms asked: nothing to wait for
    delivery = await inbox.next()
    assert delivery.body == b'{"hello": "world"}'
    assert delivery.routing_key == queue
    assert delivery.exchange == ""
    assert delivery.redelivered is False
    assert delivery.properties.correlation_id == "corr-1"
    assert delivery.properties.content_type == "application/json"
    assert delivery.properties.headers == {"x-user": "alice", "x-attempt": 2}


async def test_a_server_named_queue_and_an_exchange_binding_route_messages(
    connect: Opener,
) -> None:
    connection = await connect(confirms=True)
    exchange = unique("exchange")
    await connection.declare_exchange(exchange, "topic", durable=False)
    queue = await connection.declare_queue("", exclusive=True)
    assert queue.startswith("amq.gen-")
    await connection.bind_queue(queue, exchange, "thing.*")
    inbox = Inbox()
    await connection.consume(queue, inbox, no_ack=True)

    await confirmed(connection.publish(exchange, "other.happened", b"no", Properties()))
    await confirmed(connection.publish(exchange, "thing.happened", b"yes", Properties()))

    delivery = await inbox.next()
    assert (delivery.exchange, delivery.routing_key, delivery.body) == (
        exchange,
        "thing.happened",
        b"yes",
    )
    await inbox.nothing_for(0.1)


async def test_confirms_resolve_every_publish_of_a_burst(connect: Opener) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("burst"), auto_delete=True)
    inbox = Inbox()
    await connection.consume(queue, inbox, no_ack=True)

    await confirmed(connection.publish("", queue, b"first", Properties()))
    futures = [
        connection.publish("", queue, str(n).encode(), Properties(message_id=str(n)))
        for n in range(200)
    ]
    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(*(f for f in futures if f is not None))

    assert len(results) == 200
    assert results == [None] * 200
    bodies = [(await inbox.next()).body for _ in range(201)]
    assert bodies == [b"first"] + [str(n).encode() for n in range(200)]


async def test_messages_already_waiting_reach_a_new_consumer(connect: Opener) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("backlog"), auto_delete=True)
    for n in range(50):
        await confirmed(connection.publish("", queue, str(n).encode(), Properties()))

    received: list[bytes] = []
    await connection.consume(queue, lambda delivery: received.append(delivery.body), no_ack=True)

    with contextlib.suppress(TimeoutError):
        await until(lambda: len(received) >= 50, timeout=1.0)
    # The broker starts delivering right behind its ConsumeOk, often in the same read.
    assert received == [str(n).encode() for n in range(50)]


async def test_an_unroutable_mandatory_publish_is_returned_without_cross_talk(
    connect: Opener,
) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("routable"), auto_delete=True)
    nowhere = unique("nowhere")

    with pytest.raises(MessageReturned):
        await confirmed(
            connection.publish(
                "", nowhere, b"lost", Properties(correlation_id="r-1"), mandatory=True
            )
        )
    await confirmed(
        connection.publish("", queue, b"kept", Properties(correlation_id="r-2"), mandatory=True)
    )

    # Both in flight at once, the returned one first and last: each future gets its own outcome.
    returned_first = connection.publish(
        "", nowhere, b"lost", Properties(correlation_id="r-3"), mandatory=True
    )
    routed = connection.publish(
        "", queue, b"kept", Properties(correlation_id="r-4"), mandatory=True
    )
    returned_last = connection.publish(
        "", nowhere, b"lost", Properties(message_id="r-5"), mandatory=True
    )
    with pytest.raises(MessageReturned):
        await confirmed(returned_first)
    await confirmed(routed)
    with pytest.raises(MessageReturned):
        await confirmed(returned_last)
    assert connection.is_open


async def test_a_body_larger_than_a_frame_arrives_whole(connect: Opener) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("large"), auto_delete=True)
    inbox = Inbox()
    await connection.consume(queue, inbox, no_ack=True)
    large = os.urandom(400 * 1024)  # above the 128 KiB frame_max: split into several frames
    small = b"after the large one"

    await confirmed(connection.publish("", queue, large, Properties(message_id="large")))
    await confirmed(connection.publish("", queue, small, Properties(message_id="small")))
    await confirmed(connection.publish("", queue, b"", Properties(message_id="empty")))

    first, second, third = await inbox.next(), await inbox.next(), await inbox.next()
    assert first.properties.message_id == "large"
    assert len(first.body) == len(large)
    assert first.body == large
    assert (second.properties.message_id, second.body) == ("small", small)
    assert (third.properties.message_id, third.body) == ("empty", b"")


async def one_and_two_waiting(
    connect: Opener, prefix: str, *, auto_delete: bool
) -> tuple[WireConnection, str, Inbox]:
    """A consumer with prefetch 1 on a new queue, and "one" then "two" published to it."""
    consumer = await connect(prefetch=1)
    queue = await consumer.declare_queue(unique(prefix), auto_delete=auto_delete)
    inbox = Inbox()
    await consumer.consume(queue, inbox, no_ack=False)
    publisher = await connect(confirms=True)
    await confirmed(publisher.publish("", queue, b"one", Properties()))
    await confirmed(publisher.publish("", queue, b"two", Properties()))
    return consumer, queue, inbox


async def test_prefetch_holds_the_next_message_until_the_ack(connect: Opener) -> None:
    consumer, _, inbox = await one_and_two_waiting(connect, "acked", auto_delete=True)

    first = await inbox.next()
    assert (first.body, first.redelivered) == (b"one", False)
    await inbox.nothing_for(0.3)  # prefetch=1: "two" waits for the ack of "one"

    consumer.ack(first.delivery_tag)
    second = await inbox.next()
    assert (second.body, second.redelivered) == (b"two", False)
    consumer.ack(second.delivery_tag)
    await inbox.nothing_for(0.1)


@pytest.mark.parametrize("ending", ["close", "abort"])
async def test_an_unacknowledged_message_is_redelivered_once_its_connection_ends(
    connect: Opener, ending: str
) -> None:
    consumer, queue, inbox = await one_and_two_waiting(connect, "unacked", auto_delete=False)
    first = await inbox.next()
    consumer.ack(first.delivery_tag)
    held = await inbox.next()
    assert held.body == b"two"
    # The successor consumes before the first connection ends: "two" comes back to it.
    successor = await connect(prefetch=1)
    again = Inbox()
    await successor.consume(queue, again, no_ack=False)
    await again.nothing_for(0.1)

    if ending == "close":
        async with asyncio.timeout(WAIT):
            await consumer.close()
    else:
        consumer.abort()

    redelivered = await again.next()
    assert (redelivered.body, redelivered.redelivered) == (b"two", True)
    successor.ack(redelivered.delivery_tag)
    await again.nothing_for(0.2)  # "one" was acknowledged: gone for good


async def test_a_rejected_message_is_requeued_or_dropped(connect: Opener) -> None:
    connection = await connect(confirms=True, prefetch=1)
    queue = await connection.declare_queue(unique("rejected"), auto_delete=True)
    inbox = Inbox()
    await connection.consume(queue, inbox, no_ack=False)
    await confirmed(connection.publish("", queue, b"once", Properties()))

    first = await inbox.next()
    connection.reject(first.delivery_tag, requeue=True)
    second = await inbox.next()
    assert (second.body, second.redelivered) == (b"once", True)
    connection.reject(second.delivery_tag, requeue=False)
    await inbox.nothing_for(0.2)


async def test_a_channel_error_closes_the_connection(connect: Opener) -> None:
    connection = await connect(confirms=True)

    with pytest.raises(WireClosed):
        async with asyncio.timeout(WAIT):
            await connection.declare_queue(unique("missing"), passive=True)

    async with asyncio.timeout(WAIT):
        reason = await connection.closed
    assert isinstance(reason, WireClosed)
    assert not connection.is_open
    with pytest.raises(WireClosed):
        connection.publish("", "anything", b"x", Properties())
    with pytest.raises(WireClosed):
        async with asyncio.timeout(WAIT):
            await connection.declare_queue(unique("after"))


async def test_a_channel_error_reports_the_brokers_reason(connect: Opener) -> None:
    connection = await connect()
    missing = unique("missing")

    with pytest.raises(WireClosed) as raised:
        async with asyncio.timeout(WAIT):
            await connection.declare_queue(missing, passive=True)

    assert "404" in str(raised.value)
    assert missing in str(raised.value)
    async with asyncio.timeout(WAIT):
        reason = await connection.closed
    assert reason is raised.value


async def test_a_wrong_password_fails_the_open_instead_of_hanging(infra: IsolatedInfra) -> None:
    parts = urlsplit(infra.amqp_url)
    netloc = f"{quote(infra.amqp_user, safe='')}:wrong-{uuid.uuid4().hex[:6]}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    with pytest.raises((WireClosed, ConnectionError)):
        async with asyncio.timeout(10):
            await WireConnection.open(url, name=unique("denied"))


async def test_aborting_fails_the_unconfirmed_publishes(connect: Opener) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("aborted"), auto_delete=True)
    pending = connection.publish("", queue, os.urandom(256 * 1024), Properties())

    connection.abort()

    async with asyncio.timeout(WAIT):
        reason = await connection.closed
    assert isinstance(reason, WireClosed)
    with pytest.raises(WireClosed):
        await confirmed(pending)


async def test_wire_reconnects_and_runs_its_setup_again(
    infra: IsolatedInfra, connect: Opener
) -> None:
    queue = unique("wired")
    inbox = Inbox()
    setups: list[WireConnection] = []

    async def setup(connection: WireConnection) -> None:
        await connection.declare_queue(queue, auto_delete=True)
        await connection.consume(queue, inbox, no_ack=True)
        setups.append(connection)

    name = unique("wire")
    wire = Wire(infra.amqp_url, name=name, setup=setup, confirms=True, reconnect_seconds=0.2)
    assert wire.connection is None
    wire.start()
    try:
        async with asyncio.timeout(WAIT):
            first = await wire.wait_connected()
        assert wire.is_connected
        assert setups == [first]
        await confirmed(first.publish("", queue, b"before", Properties()))
        assert (await inbox.next()).body == b"before"

        await close_connections_named(infra, name, timeout=8)

        await until(lambda: not wire.is_connected)
        assert wire.connection is None
        assert isinstance(first.closed.result(), WireClosed)

        async with asyncio.timeout(WAIT):
            second = await wire.wait_connected()
        assert second is not first
        assert wire.connection is second
        assert len(setups) == 2
        assert setups[1] is second
        publisher = await connect(confirms=True)
        await confirmed(publisher.publish("", queue, b"after", Properties()))
        assert (await inbox.next()).body == b"after"
    finally:
        async with asyncio.timeout(WAIT):
            await wire.stop()
    assert wire.connection is None


async def test_wire_stop_closes_its_connection(infra: IsolatedInfra, connect: Opener) -> None:
    queue = unique("owned")

    async def setup(connection: WireConnection) -> None:
        await connection.declare_queue(queue, exclusive=True)

    wire = Wire(infra.amqp_url, name=unique("wire"), setup=setup, reconnect_seconds=0.2)
    wire.start()
    async with asyncio.timeout(WAIT):
        connection = await wire.wait_connected()

    try:
        async with asyncio.timeout(WAIT):
            await wire.stop()
        # The exclusive queue lives as long as the connection that declared it.
        taken_over = False
        for _ in range(10):
            successor = await connect()
            with contextlib.suppress(WireClosed):
                await successor.declare_queue(queue, exclusive=True)
                taken_over = True
                break
            await asyncio.sleep(0.1)
    finally:
        connection.abort()

    assert not wire.is_connected
    assert taken_over, "the broker still has the connection after Wire.stop() (405 RESOURCE_LOCKED)"
    assert not connection.closed.cancelled()
    assert connection.closed.result() is None  # closed by us, politely


async def test_wire_retries_a_setup_that_failed(infra: IsolatedInfra, connect: Opener) -> None:
    queue = unique("later")
    attempts: list[WireConnection] = []

    async def setup(connection: WireConnection) -> None:
        attempts.append(connection)
        await connection.declare_queue(queue, passive=True)  # 404 until the queue exists

    wire = Wire(infra.amqp_url, name=unique("wire"), setup=setup, reconnect_seconds=0.1)
    wire.start()
    try:
        await until(lambda: len(attempts) >= 2)
        assert not wire.is_connected
        creator = await connect()
        await creator.declare_queue(queue, auto_delete=False)
        async with asyncio.timeout(WAIT):
            connection = await wire.wait_connected()
        assert connection is attempts[-1]
        assert all(not attempt.is_open for attempt in attempts[:-1])
    finally:
        async with asyncio.timeout(WAIT):
            await wire.stop()


async def test_a_consumer_cancelled_by_the_broker_leaves_the_connection_working(
    infra: IsolatedInfra, connect: Opener
) -> None:
    connection = await connect(confirms=True)
    doomed = await connection.declare_queue(unique("doomed"))
    survivor = await connection.declare_queue(unique("survivor"), auto_delete=True)
    doomed_inbox, survivor_inbox = Inbox(), Inbox()
    await connection.consume(doomed, doomed_inbox, no_ack=True)
    await connection.consume(survivor, survivor_inbox, no_ack=True)

    async with management(infra) as api:
        response = await api.delete(
            f"/api/queues/{quote(infra.vhost, safe='')}/{quote(doomed, safe='')}"
        )
        assert response.status_code in (200, 204)
        # The broker's Basic.Cancel reaches us at once; give it a moment before checking.
        await asyncio.sleep(0.2)

    assert connection.is_open
    await confirmed(connection.publish("", survivor, b"still here", Properties()))
    assert (await survivor_inbox.next()).body == b"still here"
    # The deleted queue can be declared and consumed again on the same connection.
    await connection.declare_queue(doomed, auto_delete=True)
    await connection.consume(doomed, doomed_inbox, no_ack=True)
    await confirmed(connection.publish("", doomed, b"back", Properties()))
    assert (await doomed_inbox.next()).body == b"back"
    assert connection.is_open


async def test_cancel_stops_the_deliveries(connect: Opener) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("cancelled"), auto_delete=False)
    inbox = Inbox()
    tag = await connection.consume(queue, inbox, no_ack=True)
    await confirmed(connection.publish("", queue, b"one", Properties()))
    assert (await inbox.next()).body == b"one"

    async with asyncio.timeout(WAIT):
        await connection.cancel(tag)
    await confirmed(connection.publish("", queue, b"two", Properties()))
    await inbox.nothing_for(0.2)
    assert connection.is_open


async def test_close_is_polite(connect: Opener) -> None:
    connection = await connect(confirms=True)
    await connection.declare_queue(unique("closing"), auto_delete=True)

    async with asyncio.timeout(WAIT):
        await connection.close()

    assert connection.closed.done()
    assert connection.closed.result() is None
    assert not connection.is_open
    with pytest.raises(WireClosed):
        connection.publish("", "anything", b"x", Properties())
    async with asyncio.timeout(WAIT):
        await connection.close()  # a second close does nothing
    assert connection.closed.result() is None


async def test_a_failing_consumer_callback_leaves_the_connection_working(connect: Opener) -> None:
    connection = await connect(confirms=True)
    queue = await connection.declare_queue(unique("failing"), auto_delete=True)
    inbox = Inbox()

    def callback(delivery: Delivery) -> None:
        if delivery.body == b"boom":
            raise RuntimeError("a bug in the owner's callback")
        inbox(delivery)

    await connection.consume(queue, callback, no_ack=True)
    await confirmed(connection.publish("", queue, b"boom", Properties()))
    await confirmed(connection.publish("", queue, b"after", Properties()))

    assert (await inbox.next()).body == b"after"
    assert connection.is_open
