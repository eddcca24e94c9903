"""The runtime's own queues.

runtime.work (direct) ──▶ queue runtime.work (quorum)         every message between nodes
  └─ malformed messages: filed by the worker on modyard.dead ──▶ queue runtime.work.dead (quorum),
     each with its reason in the ``x-modyard-rejected-reason`` header
runtime.delay.<N>s (classic, TTL N s, dead-letters to runtime.work)
    a retried or delayed message waits here: the broker, not a sleeping consumer, holds it
(default exchange) ──▶ modyard.modules.<installation id>   requests to that installation's module
    worker (declared with the worker's broker user when its credentials are issued: worker_access)
modyard.modules.replies (direct, routing key = queue name) ──▶ runtime.replies.<process> (exclusive)
    answers of module workers, the only exchange their users may publish to
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import aio_pika
from aio_pika.abc import (
    AbstractExchange,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from modyard.common.bus.connection import MessageCallback
from modyard.common.bus.topology import DEAD_LETTER_EXCHANGE
from modyard.runtime.failures import DELAY_TIERS
from modyard.runtime.worker_access.service import REPLIES_EXCHANGE

WORK_EXCHANGE = "runtime.work"
WORK_QUEUE = "runtime.work"
WORK_ROUTING_KEY = "work"
#: Work messages that can never be handled (not JSON, wrong shape), with their reason.
WORK_DEAD_LETTER_QUEUE = "runtime.work.dead"
#: Redeliveries of one message (crashes mid-handling) before the broker gives up on it.
WORK_DELIVERY_LIMIT = 50


def delay_queue(seconds: int) -> str:
    return f"runtime.delay.{seconds}s"


class RuntimeTopology:
    """Declares the runtime's queues on every (re)connect and starts its consumers."""

    def __init__(
        self,
        *,
        on_work: MessageCallback,
        on_reply: MessageCallback,
        prefetch: int,
        consume_when_ready: Callable[[AbstractQueue, MessageCallback], None],
    ) -> None:
        self._on_work = on_work
        self._on_reply = on_reply
        self._prefetch = prefetch
        self._consume_when_ready = consume_when_ready
        self.reply_queue = f"runtime.replies.{uuid.uuid4().hex[:12]}"

    async def declare(
        self, channel: AbstractRobustChannel, connection: AbstractRobustConnection
    ) -> dict[str, AbstractExchange]:
        work = await channel.declare_exchange(
            WORK_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        replies_exchange = await channel.declare_exchange(
            REPLIES_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        consume = await connection.channel()
        await consume.set_qos(prefetch_count=self._prefetch)
        queue = await consume.declare_queue(
            WORK_QUEUE,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-delivery-limit": WORK_DELIVERY_LIMIT},
        )
        await queue.bind(work, routing_key=WORK_ROUTING_KEY)
        dead_exchange = await channel.declare_exchange(
            DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead = await channel.declare_queue(
            WORK_DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dead_exchange, routing_key=WORK_DEAD_LETTER_QUEUE)
        for seconds in DELAY_TIERS:
            await channel.declare_queue(
                delay_queue(seconds),
                durable=True,
                arguments={
                    "x-message-ttl": seconds * 1000,
                    "x-dead-letter-exchange": WORK_EXCHANGE,
                    "x-dead-letter-routing-key": WORK_ROUTING_KEY,
                },
            )
        replies = await consume.declare_queue(self.reply_queue, exclusive=True, auto_delete=True)
        await replies.bind(replies_exchange, routing_key=self.reply_queue)
        await replies.consume(self._on_reply, no_ack=True)
        # Work is taken only once the bus is ready: taken before, a message could not publish
        # its outputs yet (after a restart, the killed process's arrive at once).
        self._consume_when_ready(queue, self._on_work)
        return {WORK_EXCHANGE: work}
