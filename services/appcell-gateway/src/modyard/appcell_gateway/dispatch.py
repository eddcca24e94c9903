"""Requests to cells and their replies, over the broker.

    (default exchange) ──routing key appcell.cell.<id>──▶ the cell's queue (classic, durable)
    appcell.replies (direct) ──routing key = queue──▶ appcell-gateway.replies.<process> (exclusive)
    appcell.requests (topic) ──#──▶ appcell-gateway.requests (quorum): AMQP ingress
        requests without reply_to ──▶ appcell-gateway.requests.dead (quorum), with their reason

Requests and replies travel on a connection of their own, a lean
:class:`~modyard.cell.wire.Wire` (the action call's hot path; aio-pika cost about three
times the CPU per round trip), with publisher confirms; it declares the replies' exchange and
this process's reply queue. The ingress exchange and queues are declared on the service's
:class:`Bus` like any other topology.

A request carries ``correlation_id``, ``reply_to`` (this process's reply queue), the header
``reply-exchange`` and an ``expiration`` equal to the timeout, so a cell that was down does not
work through requests nobody waits for any more. Requests are published ``mandatory`` and
**transient** with publisher confirms: the caller waits for the cell's reply anyway, and a request
is worthless after its timeout, so writing it to disk would only add latency; the confirm of a
transient message costs no disk write, and it is how the broker reports a request it cannot route
(the cell's queue is gone), which then fails at once with a 503.

The reply queue keeps its name across reconnections, so a reply sent while the connection was
being restored still reaches the caller waiting for it. The reply is matched by correlation id to
the one waiting caller; a reply for a request that already timed out finds nobody and is dropped,
so it can never reach another caller. A reply must come from the broker user of the cell that
was asked (RabbitMQ vouches for ``user_id``); anything else is dropped as well.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection

from modyard.appcell_gateway import json_body
from modyard.appcell_gateway.broker_admin import REPLIES_EXCHANGE
from modyard.appcell_gateway.problems import CellTimeout, CellUnavailable
from modyard.cell.wire import Delivery, Properties, Wire, WireConnection
from modyard.common.bus.connection import Bus, BusUnavailable, MessageCallback, MessageReturned
from modyard.common.bus.replies import InvalidReply, PendingReplies
from modyard.common.observability import tracing

log = structlog.get_logger(__name__)

INGRESS_EXCHANGE = "appcell.requests"
INGRESS_QUEUE = "appcell-gateway.requests"
#: Ingress requests that cannot be answered (no reply_to), each with its reason in a header.
INGRESS_DEAD_LETTER_QUEUE = "appcell-gateway.requests.dead"
INGRESS_DELIVERY_LIMIT = 5
REQUEST_TYPE = "appcell.request"
TRANSIENT = 1
REPLY_EXCHANGE_HEADER = "reply-exchange"


class Dispatcher:
    """Sends requests to cells and hands each reply to the one caller waiting for it."""

    def __init__(
        self,
        bus: Bus,
        *,
        amqp_url: str,
        on_ingress: MessageCallback,
        ingress_prefetch: int,
    ) -> None:
        self._bus = bus
        self._on_ingress = on_ingress
        self._ingress_prefetch = ingress_prefetch
        self._replies = PendingReplies()
        self.reply_queue = f"appcell-gateway.replies.{uuid.uuid4().hex[:12]}"
        self.default_exchange: AbstractExchange | None = None
        self._wire = Wire(
            amqp_url, name="modyard-appcell-gateway-requests", setup=self._setup, confirms=True
        )
        bus.require(lambda: self._wire.is_connected)

    def start(self) -> None:
        self._wire.start()

    @property
    def connection(self) -> WireConnection | None:
        """The requests' connection to the broker, while it is open."""
        return self._wire.connection

    async def stop(self) -> None:
        await self._wire.stop()

    async def declare(
        self, channel: AbstractRobustChannel, connection: AbstractRobustConnection
    ) -> dict[str, AbstractExchange]:
        """The bus's part: the AMQP ingress (the replies' exchange is the wire's, in _setup)."""
        self.default_exchange = channel.default_exchange
        ingress = await channel.declare_exchange(
            INGRESS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        ingress_channel = await connection.channel()
        await ingress_channel.set_qos(prefetch_count=self._ingress_prefetch)
        ingress_queue = await ingress_channel.declare_queue(
            INGRESS_QUEUE,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": INGRESS_DELIVERY_LIMIT},
        )
        await ingress_queue.bind(ingress, routing_key="#")
        await ingress_channel.declare_queue(
            INGRESS_DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        # Taken only once the bus is ready: after a restart the queued and redelivered requests
        # arrive at once, and would be answered 503 "broker not connected" by call().
        self._bus.consume_when_ready(
            ingress_queue, self._on_ingress, after=self._wire.wait_connected
        )
        return {INGRESS_EXCHANGE: ingress}

    async def _setup(self, connection: WireConnection) -> None:
        """The wire's part, on every (re)connect: this process's reply queue (exclusive to the
        connection, so the broker deletes it with a dead process) and its consumer."""
        await connection.declare_exchange(REPLIES_EXCHANGE, "direct", durable=True)
        await connection.declare_queue(self.reply_queue, exclusive=True, auto_delete=True)
        await connection.bind_queue(self.reply_queue, REPLIES_EXCHANGE, self.reply_queue)
        await connection.consume(self.reply_queue, self.on_reply, no_ack=True)

    def on_reply(self, message: Delivery) -> None:
        properties = message.properties
        self._replies.settle(properties.correlation_id, properties.user_id, message.body)

    @property
    def late_replies(self) -> int:
        """Replies that found nobody waiting (the caller timed out, or a second answer)."""
        return self._replies.late

    async def call(
        self,
        queue: str,
        body: dict[str, Any],
        *,
        request_id: str,
        user: str | None,
        timeout: float,
    ) -> Any:
        """Send ``body`` to ``queue`` and wait for the reply; raises 503/504 problems.

        ``request_id`` is the message's id, what the cell remembers answers by; the reply is
        matched by a correlation id of its own, unique even when a caller sends one request
        twice at once."""
        with self._replies.expect(user) as (correlation_id, future):
            try:
                return await self._send(queue, body, request_id, timeout, correlation_id, future)
            except InvalidReply:
                return {"error": {"message": "the cell answered invalid JSON"}}

    async def _send(
        self,
        queue: str,
        body: dict[str, Any],
        request_id: str,
        timeout: float,
        correlation_id: str,
        future: asyncio.Future[Any],
    ) -> Any:
        # One wait for the caller: the reply's future. The broker's confirm (or its return of an
        # unroutable request, or the connection's loss) and the timeout settle that future
        # through callbacks, instead of ``asyncio.timeout`` around two awaits: each await is a
        # turn of the event loop for the request's task, and the confirm always comes first.
        try:
            connection = self._wire.connection
            if connection is None:
                raise BusUnavailable("the message broker is not connected")
            confirmed = connection.publish(
                "",
                queue,
                json_body.dumps(body),
                Properties(
                    content_type="application/json",
                    delivery_mode=TRANSIENT,
                    message_id=request_id,
                    message_type=REQUEST_TYPE,
                    correlation_id=correlation_id,
                    reply_to=self.reply_queue,
                    # The caller's trace continues in the cell (W3C traceparent).
                    headers=tracing.inject({REPLY_EXCHANGE_HEADER: REPLIES_EXCHANGE}),
                    expiration=str(int(timeout * 1000)),
                    app_id="modyard-appcell-gateway",
                ),
                mandatory=True,
            )
        except BusUnavailable as exc:
            raise self._unavailable(exc) from exc
        assert confirmed is not None, "the requests' connection confirms"
        confirmed.add_done_callback(functools.partial(_fail_unless_taken, future, queue))
        expiry = asyncio.get_running_loop().call_later(timeout, _expire, future)
        try:
            return await future
        except _Expired:
            raise CellTimeout(
                f"The cell did not answer within {timeout:g} s; its answer, if it comes, is "
                "discarded. Retry later or check that the cell is running.",
                timeout_seconds=timeout,
            ) from None
        except (MessageReturned, BusUnavailable) as exc:
            raise self._unavailable(exc) from exc
        finally:
            expiry.cancel()

    @staticmethod
    def _unavailable(exc: Exception) -> CellUnavailable:
        return CellUnavailable(
            f"The request could not be handed to the cell ({exc}); retry shortly.",
            retry_after_seconds=2,
        )


class _Expired(Exception):
    """The reply did not come within the request's timeout."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(_Expired())


def _fail_unless_taken(
    future: asyncio.Future[Any], queue: str, confirmed: asyncio.Future[None]
) -> None:
    """The broker's confirm: nothing to do once a queue took the request; otherwise the caller
    learns at once (the queue is gone, or the connection was lost before the broker said)."""
    if confirmed.cancelled():
        return
    error = confirmed.exception()  # retrieved here, whatever happens to the caller
    if error is None or future.done():
        return
    if isinstance(error, MessageReturned):
        error = MessageReturned(f"the cell's queue {queue!r} does not exist any more")
    future.set_exception(error)
