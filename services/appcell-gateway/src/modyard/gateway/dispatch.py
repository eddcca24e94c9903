"""Requests to cells and their replies, over the broker.

    (default exchange) ──routing key appcell.cell.<id>──▶ the cell's queue (classic, durable)
    appcell.replies (direct) ──routing key = queue──▶ appcell-gateway.replies.<process> (exclusive)
    appcell.requests (topic) ──#──▶ appcell-gateway.requests (quorum): AMQP ingress
        requests without reply_to ──▶ appcell-gateway.requests.dead (quorum), with their reason

A request carries ``correlation_id``, ``reply_to`` (this process's reply queue), the header
``reply-exchange`` and an ``expiration`` equal to the timeout, so a cell that was down does not
work through requests nobody waits for any more. Requests are published ``mandatory`` and
**transient** on a channel of their own with publisher confirms: the caller waits for the cell's
reply anyway, and a request is worthless after its timeout, so writing it to disk would only add
latency; the confirm of a transient message costs no disk write, and it is how the broker reports a
request it cannot route (the cell's queue is gone), which then fails at once with a 503.

The reply is matched by correlation id to the one waiting caller; a reply for a request that
already timed out finds nobody and is dropped, so it can never reach another caller. A reply must come from the broker user of the cell that
was asked (RabbitMQ vouches for ``user_id``); anything else is dropped as well.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from modyard.common.bus.connection import (
    CHANNEL_LOST,
    Bus,
    BusUnavailable,
    MessageCallback,
    MessageReturned,
)
from modyard.gateway.broker_admin import REPLIES_EXCHANGE
from modyard.gateway.problems import CellTimeout, CellUnavailable

log = structlog.get_logger(__name__)

INGRESS_EXCHANGE = "appcell.requests"
INGRESS_QUEUE = "appcell-gateway.requests"
#: Ingress requests that cannot be answered (no reply_to), each with its reason in a header.
INGRESS_DEAD_LETTER_QUEUE = "appcell-gateway.requests.dead"
INGRESS_DELIVERY_LIMIT = 5
REQUEST_TYPE = "appcell.request"
TRANSIENT = 1
REPLY_EXCHANGE_HEADER = "reply-exchange"


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    user: str | None


class Dispatcher:
    """Sends requests to cells and hands each reply to the one caller waiting for it."""

    def __init__(self, bus: Bus, *, on_ingress: MessageCallback, ingress_prefetch: int) -> None:
        self._bus = bus
        self._on_ingress = on_ingress
        self._ingress_prefetch = ingress_prefetch
        self._pending: dict[str, _Pending] = {}
        self.reply_queue = f"appcell-gateway.replies.{uuid.uuid4().hex[:12]}"
        self.late_replies = 0
        self.default_exchange: AbstractExchange | None = None
        self._requests: AbstractRobustChannel | None = None

    async def declare(
        self, channel: AbstractRobustChannel, connection: AbstractRobustConnection
    ) -> dict[str, AbstractExchange]:
        replies = await channel.declare_exchange(
            REPLIES_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self.default_exchange = channel.default_exchange
        ingress = await channel.declare_exchange(
            INGRESS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        request_channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
        assert isinstance(request_channel, aio_pika.RobustChannel)
        self._requests = request_channel
        reply_channel = await connection.channel()
        reply_queue = await reply_channel.declare_queue(
            self.reply_queue, exclusive=True, auto_delete=True
        )
        await reply_queue.bind(replies, routing_key=self.reply_queue)
        await reply_queue.consume(self.on_reply, no_ack=True)
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
        self._bus.consume_when_ready(ingress_queue, self._on_ingress)
        return {REPLIES_EXCHANGE: replies, INGRESS_EXCHANGE: ingress}

    async def on_reply(self, message: AbstractIncomingMessage) -> None:
        correlation_id = message.correlation_id or ""
        pending = self._pending.get(correlation_id)
        if pending is None or pending.future.done():
            self.late_replies += 1
            log.info("late_reply_discarded", correlation_id=correlation_id)
            return
        if pending.user is not None and message.user_id != pending.user:
            log.warning(
                "reply_from_wrong_user_discarded",
                correlation_id=correlation_id,
                user=message.user_id,
            )
            return
        del self._pending[correlation_id]
        try:
            pending.future.set_result(json.loads(message.body))
        except ValueError:
            pending.future.set_result({"error": {"message": "the cell answered invalid JSON"}})

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
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = _Pending(future, user)
        try:
            if self._requests is None or not self._bus.is_connected:
                raise BusUnavailable("the message broker is not connected")
            async with asyncio.timeout(timeout):
                # The frame's properties built directly and sent on the underlying aiormq
                # channel, as the bus does: aio_pika's Message costs more than the publish.
                channel = await self._requests.get_underlay_channel()
                confirmed = await channel.basic_publish(
                    json.dumps(body, separators=(",", ":")).encode(),
                    exchange="",
                    routing_key=queue,
                    properties=aiormq.spec.Basic.Properties(
                        content_type="application/json",
                        delivery_mode=TRANSIENT,
                        message_id=request_id,
                        message_type=REQUEST_TYPE,
                        correlation_id=correlation_id,
                        reply_to=self.reply_queue,
                        headers={REPLY_EXCHANGE_HEADER: REPLIES_EXCHANGE},
                        expiration=str(int(timeout * 1000)),
                        app_id="modyard-appcell-gateway",
                    ),
                    mandatory=True,
                )
                if not isinstance(confirmed, aiormq.spec.Basic.Ack):
                    raise MessageReturned(f"the cell's queue {queue!r} does not exist any more")
                return await future
        except TimeoutError:
            raise CellTimeout(
                f"The cell did not answer within {timeout:g} s; its answer, if it comes, is "
                "discarded. Retry later or check that the cell is running.",
                timeout_seconds=timeout,
            ) from None
        except (
            MessageReturned,
            BusUnavailable,
            aio_pika.exceptions.AMQPError,
            *CHANNEL_LOST,
        ) as exc:
            raise CellUnavailable(
                f"The request could not be handed to the cell ({exc}); retry shortly.",
                retry_after_seconds=2,
            ) from exc
        finally:
            self._pending.pop(correlation_id, None)
