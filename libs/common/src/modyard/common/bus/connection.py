"""The RabbitMQ connection of one service process.

``connect_robust`` restores the connection, channels, topology and consumers after the broker comes
back, but it gives up if the *first* attempt fails; :meth:`Bus.start` therefore keeps trying in the
background, so a service started before its broker becomes ready on its own instead of crashing.

Publishing uses a channel with publisher confirms and ``mandatory=True``: a message counts as sent
only once the broker has confirmed it, and a message the broker cannot route comes back to
:meth:`Bus._on_returned` (logged and counted) and makes :meth:`Bus.publish` raise.

Two gaps of ``connect_robust`` are closed here (both seen in tests/test_broker_outage.py):

- its ``connected`` event is set as soon as the socket is back, *before* the channels are
  reopened one by one, so a consumer restored first receives messages while the publishing channel
  is still closed. The bus counts as connected only once the reconnect callbacks ran, which
  aio-pika calls after every channel (and its consumers) has been restored;
- a publish on a channel that is closed, or whose connection drops before the confirm, raises
  aiormq's ``ChannelInvalidStateError`` (a ``RuntimeError``) or ``ConnectionClosed``. Those become
  :class:`BusUnavailable`, the one error callers handle (a 503, a message requeued), instead of
  an unexpected error that left a consumed message unacknowledged until the next reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.connection import TCPTransportFactory
from tenacity import AsyncRetrying, retry_if_exception_type
from yarl import URL

# The broker's errors and reconnect pace are the lean wire's (the cell SDK's AMQP client), so that
# the gateway catches one BusUnavailable whichever connection raised it.
from modyard.cell.wire import RECONNECT_SECONDS as RECONNECT_SECONDS
from modyard.cell.wire import BusUnavailable as BusUnavailable
from modyard.cell.wire import MessageReturned as MessageReturned
from modyard.common.backoff import STARTUP_BACKOFF
from modyard.common.bus import topology
from modyard.common.bus.envelope import CLOUDEVENTS_CONTENT_TYPE, CloudEvent
from modyard.common.http_server import CoalescingTransport
from modyard.common.observability import tracing
from modyard.common.observability.metrics import EVENTS_PUBLISHED, EVENTS_RETURNED
from modyard.common.settings import ServiceSettings

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)

log = structlog.get_logger(__name__)

#: What aiormq raises when a publish's channel or connection went away under it: the channel
#: closed (a ``RuntimeError``, not an ``AMQPError``) or the connection dropped.
CHANNEL_LOST = (aiormq.exceptions.ChannelInvalidStateError, aiormq.exceptions.AMQPConnectionError)

MessageCallback = Callable[[AbstractIncomingMessage], Awaitable[None]]
#: Declares a service's own exchanges, queues and consumers on (publish channel, connection);
#: returns the exchanges it wants to publish to, by name. Runs on every (re)connect.
TopologyHook = Callable[
    [AbstractRobustChannel, AbstractRobustConnection], Awaitable[dict[str, AbstractExchange]]
]


class _CoalescingTCP(TCPTransportFactory):
    """aiormq's plain TCP connection, whose frames written in one turn of the event loop go out
    in one write (:class:`~modyard.common.http_server.CoalescingTransport`). aiormq writes every
    frame on its own (a publish is three: method, header, body; an ack one), each a ``send``
    system call under uvloop, and a busy runtime acks and publishes dozens of messages per turn.
    Bytes and order are unchanged; nothing waits past the current turn."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await super().create(url, **kwargs)
        # StreamWriter keeps its transport in ``_transport`` (uvloop's is no asyncio.Transport
        # subclass, but behaves as one); drain() goes through the protocol, which keeps the real
        # transport.
        writer._transport = CoalescingTransport(  # type: ignore[attr-defined]
            cast(asyncio.Transport, writer.transport), asyncio.get_running_loop()
        )
        return reader, writer


class _RobustConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection, with :class:`_CoalescingTCP` for ``amqp://`` URLs (aio-pika
    passes only the parameters it knows on to aiormq, so the factory goes in here)."""

    def __init__(self, url: URL, *args: Any, **kwargs: Any) -> None:
        super().__init__(url, *args, **kwargs)
        if self.url.scheme == "amqp":
            self.kwargs["transport_factory"] = _CoalescingTCP()


@dataclass(frozen=True)
class QueueConsumer:
    queue: str
    bindings: Sequence[str]
    callback: MessageCallback
    arguments: dict[str, Any]
    dead_letter_queue: str | None = None


class Bus:
    def __init__(self, settings: ServiceSettings) -> None:
        self._url = settings.amqp_url
        self._service = settings.service_name
        self._app_id = f"modyard-{settings.service_name}"
        self._prefetch = settings.consumer_prefetch
        self._consumers: list[QueueConsumer] = []
        self._topology_hooks: list[TopologyHook] = []
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._ready = asyncio.Event()
        #: False from a lost connection until aio-pika has restored every channel and consumer.
        self._channels_restored = False
        self._connect_task: asyncio.Task[None] | None = None
        self._consumer_starts: dict[str, asyncio.Task[None]] = {}
        self._closing = False
        self._requirements: list[Callable[[], bool]] = []
        self._observed: set[str] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    def add_consumer(self, consumer: QueueConsumer) -> None:
        if self._connect_task is not None:
            raise RuntimeError("add consumers before Bus.start()")
        self._consumers.append(consumer)

    def add_topology(self, hook: TopologyHook) -> None:
        """A service's own exchanges and queues (e.g. the runtime's work and delay queues)."""
        if self._connect_task is not None:
            raise RuntimeError("add topology before Bus.start()")
        self._topology_hooks.append(hook)

    def start(self) -> None:
        if self._connect_task is None:
            self._connect_task = asyncio.create_task(self._connect_forever(), name="bus-connect")

    async def wait_ready(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    @property
    def is_connected(self) -> bool:
        connection = self._connection
        return (
            self._ready.is_set()
            and self._channels_restored
            and connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
        )

    def observe_queue(self, *names: str) -> None:
        """Queues of the service's own topology whose depth and consumers its metrics report
        (its consumers' queues are reported anyway)."""
        self._observed.update(names)

    def observed_queues(self) -> list[str]:
        consumed = {consumer.queue for consumer in self._consumers}
        dead = {c.dead_letter_queue for c in self._consumers if c.dead_letter_queue}
        return sorted(consumed | dead | self._observed)

    async def queue_counts(self, name: str) -> tuple[int, int] | None:
        """(messages ready, consumers) of queue ``name``; None when it does not exist or the
        broker is away. A passive declare on a channel of its own: a missing queue closes the
        channel it is asked on, which must not be the publishing one."""
        connection = self._connection
        if connection is None or not self.is_connected:
            return None
        try:
            channel = await connection.channel()
        except (aiormq.exceptions.AMQPError, *CHANNEL_LOST, ConnectionError):
            return None
        try:
            queue = await channel.declare_queue(name, passive=True)
            declared = queue.declaration_result
            return int(declared.message_count or 0), int(declared.consumer_count or 0)
        except (aiormq.exceptions.AMQPError, *CHANNEL_LOST, ConnectionError):
            return None
        finally:
            if not channel.is_closed:
                await channel.close()

    def require(self, check: Callable[[], bool]) -> None:
        """Another broker connection of the service (a :class:`~modyard.cell.wire.Wire`)
        that ``/readyz`` reports as part of the broker."""
        self._requirements.append(check)

    @property
    def is_ready(self) -> bool:
        """Connected, and every connection added with :meth:`require` is too."""
        return self.is_connected and all(check() for check in self._requirements)

    def consume_when_ready(
        self,
        queue: AbstractQueue,
        callback: MessageCallback,
        *,
        after: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Consume ``queue`` once the bus is ready. Topology hooks run before it is, and a message
        taken then could not publish what it produces or its answer: it would be given back
        after a pause (one of its deliveries spent for nothing) or answered 503 although nothing
        is wrong. A hook run again (an earlier connection attempt failed) replaces the earlier
        wait; aio-pika restores the consumer itself after a reconnect. ``after`` is awaited too:
        what else the callback needs (another connection)."""
        earlier = self._consumer_starts.pop(queue.name, None)
        if earlier is not None:
            earlier.cancel()

        async def consume() -> None:
            await self.wait_ready()
            if after is not None:
                await after()
            await queue.consume(callback)

        self._consumer_starts[queue.name] = asyncio.create_task(
            consume(), name=f"consume-{queue.name}"
        )

    async def close(self) -> None:
        self._closing = True
        starts = [self._connect_task, *self._consumer_starts.values()]
        for task in starts:
            if task is not None:
                task.cancel()
        await asyncio.gather(*(task for task in starts if task is not None), return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
        self._ready.clear()

    async def _connect_forever(self) -> None:
        async for attempt in AsyncRetrying(
            wait=STARTUP_BACKOFF.wait,
            retry=retry_if_exception_type(
                (OSError, ConnectionError, aio_pika.exceptions.AMQPError)
            ),
            before_sleep=lambda state: log.warning(
                "broker_unreachable",
                attempt=state.attempt_number,
                error=str(state.outcome and state.outcome.exception()),
            ),
        ):
            with attempt:
                await self._connect()
        log.info("broker_connected")

    async def _connect(self) -> None:
        connection = await aio_pika.connect_robust(
            self._url,
            # aio-pika retries a lost connection every 5 s by default: the work waiting for the
            # broker resumes up to that much later than it could. A retry is one TCP connect.
            reconnect_interval=RECONNECT_SECONDS,
            client_properties={"connection_name": f"modyard-{self._service}"},
            connection_class=_RobustConnection,
        )
        try:
            await self._declare(connection)
        except BaseException:
            await connection.close()
            raise
        connection.close_callbacks.add(self._on_connection_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._connection = connection
        self._channels_restored = True
        self._ready.set()

    async def _declare(self, connection: AbstractRobustConnection) -> None:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=False)
        assert isinstance(channel, aio_pika.RobustChannel)
        channel.return_callbacks.add(self._on_returned)
        events = await channel.declare_exchange(
            topology.EVENTS_EXCHANGE,
            aio_pika.ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": topology.UNROUTED_EXCHANGE},
        )
        unrouted = await channel.declare_exchange(
            topology.UNROUTED_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        unrouted_queue = await channel.declare_queue(
            topology.UNROUTED_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await unrouted_queue.bind(unrouted)
        dead = await channel.declare_exchange(
            topology.DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        self._publish_channel = channel
        self._exchanges = {
            topology.EVENTS_EXCHANGE: events,
            topology.DEAD_LETTER_EXCHANGE: dead,
            "": channel.default_exchange,
        }
        for hook in self._topology_hooks:
            self._exchanges.update(await hook(channel, connection))

        if self._consumers:
            consume_channel = await connection.channel()
            await consume_channel.set_qos(prefetch_count=self._prefetch)
            for consumer in self._consumers:
                if consumer.dead_letter_queue:
                    dead_queue = await consume_channel.declare_queue(
                        consumer.dead_letter_queue,
                        durable=True,
                        arguments={"x-queue-type": "quorum"},
                    )
                    await dead_queue.bind(dead, routing_key=consumer.dead_letter_queue)
                queue = await consume_channel.declare_queue(
                    consumer.queue, durable=True, arguments=consumer.arguments
                )
                for binding in consumer.bindings:
                    await queue.bind(events, routing_key=binding)
                await queue.consume(consumer.callback)

    def _on_connection_lost(self, *_: Any) -> None:
        self._channels_restored = False
        if not self._closing:
            log.warning("broker_connection_lost")

    def _on_reconnected(self, *_: Any) -> None:
        # aio-pika calls this after it has reopened every channel and restored its consumers.
        self._channels_restored = True
        log.info("broker_reconnected")

    def _on_returned(self, _channel: Any, message: AbstractIncomingMessage) -> None:
        EVENTS_RETURNED.labels(
            self._service, message.exchange or "", message.routing_key or ""
        ).inc()
        log.error(
            "message_returned",
            exchange=message.exchange,
            routing_key=message.routing_key,
            message_id=message.message_id,
        )

    # -- publishing ----------------------------------------------------------------------------

    async def publish(
        self,
        event: CloudEvent,
        *,
        exchange: str = topology.EVENTS_EXCHANGE,
        routing_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Publish ``event`` and wait for the broker's confirm.

        Raises :class:`BusUnavailable` when not connected, :class:`MessageReturned` when the broker
        could not route it, and ``aio_pika.exceptions.DeliveryError`` when the broker refused it.
        """
        if tracing.ENABLED:
            # The event's own context (CloudEvents' traceparent, set where it was recorded): the
            # outbox relay publishes it later, from a task of its own.
            with tracing.continuing(event.model_extra):
                await self.publish_body(
                    event.to_json_bytes(),
                    exchange=exchange,
                    routing_key=routing_key or event.type,
                    message_id=event.id,
                    event_type=event.type,
                    correlation_id=event.correlationid,
                    timeout=timeout,
                )
            return
        await self.publish_body(
            event.to_json_bytes(),
            exchange=exchange,
            routing_key=routing_key or event.type,
            message_id=event.id,
            event_type=event.type,
            correlation_id=event.correlationid,
            timeout=timeout,
        )

    async def publish_body(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        message_id: str,
        event_type: str,
        correlation_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        await self.publish_message(
            body,
            exchange=exchange,
            routing_key=routing_key,
            message_id=message_id,
            message_type=event_type,
            correlation_id=correlation_id,
            content_type=CLOUDEVENTS_CONTENT_TYPE,
            timeout=timeout,
        )
        EVENTS_PUBLISHED.labels(self._service, event_type).inc()

    async def publish_message(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        message_id: str,
        message_type: str | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        headers: dict[str, Any] | None = None,
        expiration: float | None = None,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> None:
        """Publish any JSON message persistently, mandatory, and wait for the broker's confirm."""
        if tracing.ENABLED:
            # A PRODUCER span; its traceparent travels in the message's headers.
            with tracing.publishing(
                exchange, routing_key, headers, message_id=message_id
            ) as traced_headers:
                await self._publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    message_id=message_id,
                    message_type=message_type,
                    correlation_id=correlation_id,
                    reply_to=reply_to,
                    headers=traced_headers,
                    expiration=expiration,
                    content_type=content_type,
                    timeout=timeout,
                )
            return
        await self._publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            message_id=message_id,
            message_type=message_type,
            correlation_id=correlation_id,
            reply_to=reply_to,
            headers=headers,
            expiration=expiration,
            content_type=content_type,
            timeout=timeout,
        )

    async def _publish(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        message_id: str,
        message_type: str | None,
        correlation_id: str | None,
        reply_to: str | None,
        headers: dict[str, Any] | None,
        expiration: float | None,
        content_type: str,
        timeout: float,
    ) -> None:
        target = self._exchanges.get(exchange)
        publish_channel = self._publish_channel
        # Every declared exchange lives on the publish channel (the topology hooks get it).
        if not self.is_connected or target is None or publish_channel is None:
            raise BusUnavailable("the message broker is not connected")
        # The frame's properties built directly and sent on the underlying aiormq channel: this
        # is the runtime's hot path, and aio_pika's Message costs more than the rest of a publish.
        properties = aiormq.spec.Basic.Properties(
            content_type=content_type,
            delivery_mode=PERSISTENT,
            message_id=message_id,
            message_type=message_type,
            correlation_id=correlation_id,
            reply_to=reply_to,
            headers=headers,
            expiration=str(int(expiration * 1000)) if expiration is not None else None,
            app_id=self._app_id,
        )
        try:
            channel = await publish_channel.get_underlay_channel()
            result = await channel.basic_publish(
                body,
                exchange=target.name,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                timeout=timeout,
            )
        except CHANNEL_LOST as exc:
            # The channel or the connection went away under this publish (aio-pika restores them
            # in the background). Unconfirmed means not sent: the caller retries or refuses.
            raise BusUnavailable(f"the message broker connection was lost ({exc})") from exc
        if not isinstance(result, aiormq.spec.Basic.Ack):
            raise MessageReturned(f"no queue is bound for {exchange!r} / {routing_key!r}")
