"""The runner's queue: the runtime's requests for ``js`` components, answered like a module
worker answers (``modyard.runtime.executors``).

(default exchange) ──▶ js-runner.requests (quorum, delivery limit)   requests, prefetch-bounded
modyard.modules.replies (direct, routing key = the request's reply_to) ◀── answers, with
    ``correlation_id`` and ``user_id`` (RabbitMQ checks it is this connection's user, and the
    runtime takes a ``js`` answer only from the runner's user)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from modyard.common.bus.connection import Bus
from modyard.common.observability import tracing
from modyard.jsrunner.runner import JsRunner
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)

#: Where module workers and the runner answer (declared by the runtime too).
REPLIES_EXCHANGE = "modyard.modules.replies"
#: A request the runner crashed on this many times is dropped by the broker.
DELIVERY_LIMIT = 5


def broker_user(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).username or "guest")


class RequestConsumer:
    def __init__(self, settings: JsRunnerSettings, bus: Bus, runner: JsRunner) -> None:
        self._settings = settings
        self._bus = bus
        self._runner = runner
        self._user = broker_user(settings.amqp_url)
        self._replies: AbstractExchange | None = None
        self.handled = 0
        #: Set once the runner can run components (sandbox probed, base layer installed):
        #: requests are taken only then.
        self.ready = asyncio.Event()

    async def declare(
        self, channel: AbstractRobustChannel, connection: AbstractRobustConnection
    ) -> dict[str, AbstractExchange]:
        self._replies = await channel.declare_exchange(
            REPLIES_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        consume = await connection.channel()
        await consume.set_qos(prefetch_count=self._settings.prefetch)
        queue = await consume.declare_queue(
            self._settings.queue,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT},
        )
        self._bus.consume_when_ready(queue, self.on_message, after=self.ready.wait)
        return {REPLIES_EXCHANGE: self._replies}

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        if tracing.ENABLED:
            # The runtime's node continues here (W3C traceparent in the request's headers).
            with tracing.consuming(
                self._settings.queue,
                message.headers,
                routing_key=message.routing_key or "",
                message_id=message.message_id,
                redelivered=bool(message.redelivered),
            ):
                await self._on_message(message)
            return
        await self._on_message(message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            request = json.loads(message.body)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            reply: dict[str, Any] = {
                "error": {"message": "the request is not a JSON object", "retryable": False}
            }
        else:
            reply = await self._runner.handle(request)
        self.handled += 1
        if message.reply_to and self._replies is not None:
            try:
                await self._replies.publish(
                    aio_pika.Message(
                        json.dumps(reply, default=str).encode(),
                        content_type="application/json",
                        correlation_id=message.correlation_id,
                        user_id=self._user,
                        type="modyard.component.reply",
                    ),
                    routing_key=message.reply_to,
                    mandatory=False,
                )
            except Exception:
                # The runtime's reply queue is gone (it restarted): its request timed out there
                # and is retried from its side; requeuing here would run the component twice.
                log.warning("js_reply_not_delivered", reply_to=message.reply_to, exc_info=True)
        await message.ack()
