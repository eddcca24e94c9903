"""A lean AMQP 0-9-1 connection for the request/reply hot paths: the gateway's requests to cells
and their replies, and the cell SDK's worker (it lives in the cell SDK so that a cell needs
nothing else to talk to the broker; the services' bus, modyard.common.bus.connection, shares its
errors).

Why not aio-pika there: aio-pika and aiormq spend about a thousand Python calls on one request/
reply round trip (a lock, three stream reads and a queue hand-off per frame, a task per delivery,
an aio-pika message object built attribute by attribute). On two shared cores that was the
largest cost of an action call (``docs/gateway.md``, "Benchmark"). This connection is an
``asyncio.Protocol``: ``data_received`` cuts the frames, pamqp decodes them, and a delivery, a
confirm or a returned message reaches its owner in that same call. The same round trip costs
about a third of the CPU.

It does only what those paths need, on one channel: PLAIN login, heartbeats, declaring and binding
queues and exchanges, consuming and cancelling, publishing with or without publisher confirms
(``mandatory`` returns included), acknowledging. URLs: ``amqp://`` and ``amqps://`` (TLS against
the system's trust store), the vhost as the path, ``?heartbeat=`` (seconds) as the one option. Everything else (services' topology, events,
the outbox) stays on aio-pika through the services' ``modyard.common.bus.connection.Bus``.

:class:`Wire` keeps one such connection open: it reconnects every ``RECONNECT_SECONDS`` and runs
its owner's ``setup`` (declare, bind, consume) on every new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import structlog
from pamqp import commands as spec
from pamqp import frame as codec
from pamqp.base import Frame
from pamqp.body import ContentBody
from pamqp.common import FieldTable
from pamqp.header import ContentHeader, ProtocolHeader
from pamqp.heartbeat import Heartbeat

from modyard.cell import frames

log = structlog.get_logger(__name__)

#: How often a lost broker connection is retried (services and the cell SDK).
RECONNECT_SECONDS = 1.0

Properties = spec.Basic.Properties
_CHANNEL = 1
_FRAME_HEADER = struct.Struct(">BHI")
_FRAME_OVERHEAD = 8  # type, channel, size and the frame-end octet
_FRAME_MAX = 131_072
_HEARTBEAT_SECONDS = 60
_CLOSE_TIMEOUT_SECONDS = 2.0
_CAPABILITIES: FieldTable = {
    "publisher_confirms": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
}


class BusUnavailable(ConnectionError):
    """The broker is not connected right now; try again later."""


class MessageReturned(RuntimeError):
    """The broker could not route a mandatory message to any queue."""


class WireClosed(BusUnavailable):
    """The connection is closed or was lost; what was not confirmed may not have arrived."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message delivered to a consumer of this connection."""

    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    properties: Properties
    body: bytes


DeliveryCallback = Callable[[Delivery], None]


@dataclass(slots=True)
class _Incoming:
    """A delivered or returned message whose header and body frames are still arriving."""

    method: spec.Basic.Deliver | spec.Basic.Return
    properties: Properties | None = None
    size: int = 0
    chunks: list[bytes] | None = None


class WireConnection(asyncio.Protocol):
    """One AMQP connection with one channel; open it with :meth:`open`."""

    def __init__(self, *, confirms: bool) -> None:
        self._confirms = confirms
        self._transport: asyncio.Transport | None = None
        #: Frames written in this turn of the event loop, sent together at its end (_flush).
        self._outgoing: list[bytes] = []
        self._buffer = bytearray()
        self._rpc_lock = asyncio.Lock()
        self._rpc_reply: asyncio.Future[Frame] | None = None
        self._consumers: dict[str, DeliveryCallback] = {}
        self._consumer_count = 0
        self._incoming: _Incoming | None = None
        self._delivery_tag = 0
        #: Unconfirmed publishes by delivery tag (in order), with the key a return is matched by.
        self._unconfirmed: dict[int, tuple[asyncio.Future[None], str | None]] = {}
        self._returnable: dict[str, int] = {}
        self._returned: set[int] = set()
        self._publish_frames: dict[tuple[str, str, bool], bytes] = {}
        self._max_body = _FRAME_MAX - _FRAME_OVERHEAD
        self._heartbeat: asyncio.TimerHandle | None = None
        self._heartbeat_seconds = 0
        self._last_received = 0.0
        self._close_reply: asyncio.Future[None] | None = None
        #: Resolved (with the reason, or None for a close of ours) once the connection is gone.
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        name: str,
        confirms: bool = False,
        prefetch: int | None = None,
        heartbeat_seconds: int = _HEARTBEAT_SECONDS,
        timeout: float = 10.0,
    ) -> WireConnection:
        """Connect, log in, open the channel (with confirms and a prefetch if asked)."""
        parts = urlsplit(url)
        secure = parts.scheme == "amqps"
        query = parse_qs(parts.query)
        if "heartbeat" in query:
            heartbeat_seconds = int(query["heartbeat"][0])
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            _, connection = await loop.create_connection(
                lambda: cls(confirms=confirms),
                parts.hostname or "localhost",
                parts.port or (5671 if secure else 5672),
                ssl=ssl.create_default_context() if secure else None,
            )
            try:
                await connection._handshake(
                    user=unquote(parts.username or "guest"),
                    password=unquote(parts.password or "guest"),
                    vhost=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
                    name=name,
                    heartbeat_seconds=heartbeat_seconds,
                    prefetch=prefetch,
                )
            except BaseException:
                connection.abort()
                raise
        return connection

    async def _handshake(
        self,
        *,
        user: str,
        password: str,
        vhost: str,
        name: str,
        heartbeat_seconds: int,
        prefetch: int | None,
    ) -> None:
        await self._rpc_raw(ProtocolHeader().marshal(), spec.Connection.Start)
        tune = await self._rpc(
            spec.Connection.StartOk(
                client_properties={
                    "product": "modyard",
                    "connection_name": name,
                    "capabilities": _CAPABILITIES,
                },
                mechanism="PLAIN",
                response=f"\0{user}\0{password}",
                locale="en_US",
            ),
            spec.Connection.Tune,
            channel=0,
        )
        assert isinstance(tune, spec.Connection.Tune)
        frame_max = min(tune.frame_max or _FRAME_MAX, _FRAME_MAX)
        self._max_body = frame_max - _FRAME_OVERHEAD
        offered = tune.heartbeat or 0
        self._heartbeat_seconds = (
            min(offered, heartbeat_seconds) if offered and heartbeat_seconds else heartbeat_seconds
        )
        self._send(
            spec.Connection.TuneOk(
                channel_max=_CHANNEL, frame_max=frame_max, heartbeat=self._heartbeat_seconds
            ),
            channel=0,
        )
        self._start_heartbeat()
        await self._rpc(spec.Connection.Open(virtual_host=vhost), spec.Connection.OpenOk, channel=0)
        await self._rpc(spec.Channel.Open(), spec.Channel.OpenOk)
        if self._confirms:
            await self._rpc(spec.Confirm.Select(), spec.Confirm.SelectOk)
        if prefetch is not None:
            await self._rpc(spec.Basic.Qos(prefetch_count=prefetch), spec.Basic.QosOk)

    # -- topology and consumers ------------------------------------------------------------------

    async def declare_exchange(self, name: str, kind: str, *, durable: bool = True) -> None:
        await self._rpc(
            spec.Exchange.Declare(exchange=name, exchange_type=kind, durable=durable),
            spec.Exchange.DeclareOk,
        )

    async def declare_queue(
        self,
        name: str,
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> str:
        """Declare (or, passive, check) a queue; its name (the broker's, for ``name=""``)."""
        reply = await self._rpc(
            spec.Queue.Declare(
                queue=name,
                passive=passive,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                arguments=arguments or {},
            ),
            spec.Queue.DeclareOk,
        )
        assert isinstance(reply, spec.Queue.DeclareOk)
        return reply.queue or name

    async def bind_queue(self, queue: str, exchange: str, routing_key: str) -> None:
        await self._rpc(
            spec.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key),
            spec.Queue.BindOk,
        )

    async def consume(self, queue: str, callback: DeliveryCallback, *, no_ack: bool) -> str:
        """Deliver ``queue``'s messages to ``callback``, called in the event loop as each one is
        complete; it must not block (start a task for real work). Returns the consumer tag."""
        # The tag is ours and the callback in place before the broker hears of the consumer: it
        # sends the queue's waiting messages right behind ConsumeOk, often in the same read.
        self._consumer_count += 1
        tag = f"modyard.{self._consumer_count}"
        self._consumers[tag] = callback
        try:
            await self._rpc(
                spec.Basic.Consume(queue=queue, consumer_tag=tag, no_ack=no_ack),
                spec.Basic.ConsumeOk,
            )
        except BaseException:
            self._consumers.pop(tag, None)
            raise
        return tag

    async def cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; messages already delivered stay to be acknowledged."""
        await self._rpc(spec.Basic.Cancel(consumer_tag=consumer_tag), spec.Basic.CancelOk)
        self._consumers.pop(consumer_tag, None)

    # -- messages --------------------------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties,
        *,
        mandatory: bool = False,
    ) -> asyncio.Future[None] | None:
        """Send a message. With publisher confirms, the future resolves once the broker took it,
        and raises :class:`MessageReturned` (a ``mandatory`` message no queue took; matched by its
        ``correlation_id`` or ``message_id``, which must then be unique among the messages in
        flight) or :class:`WireClosed`. Without confirms: None."""
        returnable = (properties.correlation_id or properties.message_id) if mandatory else None
        if mandatory and self._confirms and not returnable:
            raise ValueError("a mandatory publish needs a correlation_id or message_id")
        transport = self._open_transport()
        key = (exchange, routing_key, mandatory)
        method = self._publish_frames.get(key)
        if method is None:
            if len(self._publish_frames) > 1024:  # routing keys come and go: stay bounded
                self._publish_frames.clear()
            method = codec.marshal(
                spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory),
                _CHANNEL,
            )
            self._publish_frames[key] = method
        parts = [method, frames.content_header(_CHANNEL, len(body), properties)]
        step = self._max_body
        parts += [
            frames.body(_CHANNEL, body[start : start + step]) for start in range(0, len(body), step)
        ]
        self._write(transport, b"".join(parts))
        if not self._confirms:
            return None
        self._delivery_tag += 1
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if returnable:
            self._returnable[returnable] = self._delivery_tag
        self._unconfirmed[self._delivery_tag] = (confirmed, returnable)
        return confirmed

    def ack(self, delivery_tag: int) -> None:
        self._write(self._open_transport(), frames.ack_frame(_CHANNEL, delivery_tag))

    def reject(self, delivery_tag: int, *, requeue: bool) -> None:
        self._send(spec.Basic.Reject(delivery_tag=delivery_tag, requeue=requeue))

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self.closed.done()

    # -- closing ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close politely (the broker requeues unacknowledged deliveries)."""
        if not self.is_open:
            return
        self._close_reply = asyncio.get_running_loop().create_future()
        with contextlib.suppress(WireClosed):
            self._send(_connection_close("bye"), channel=0)
        with contextlib.suppress(TimeoutError, WireClosed):
            async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                await self._close_reply
        self._lost(None)
        self.abort()

    def abort(self) -> None:
        self._outgoing.clear()
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._last_received = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._outgoing.clear()
        self._lost(WireClosed(f"the connection to the broker was lost ({exc or 'closed'})"))
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._last_received = asyncio.get_running_loop().time()
        buffer = self._buffer
        buffer += data
        offset = 0
        available = len(buffer)
        while available - offset >= _FRAME_OVERHEAD - 1:
            _, _, size = _FRAME_HEADER.unpack_from(buffer, offset)
            end = offset + size + _FRAME_OVERHEAD
            if end > available:
                break
            try:
                kind, channel, frame = _read_frame(bytes(buffer[offset:end]))
            except Exception as exc:  # a broken stream: nothing after it can be trusted
                log.error("amqp_frame_unreadable", error=str(exc))
                self._lost(WireClosed(f"unreadable frame from the broker: {exc}"))
                self.abort()
                return
            offset = end
            # The frames of every request and reply first, read by modyard.cell.frames: a
            # delivery is three of them (method, header, body), a confirm one.
            if kind == _BODY:
                self._on_body(frame)
            elif kind == _HEADER:
                self._on_header(*frame)
            elif kind == _DELIVER:
                self._incoming = _Incoming(frame)
            elif kind == _ACK:
                delivery_tag, multiple = frame
                self._on_confirm(delivery_tag, multiple, None)
            else:
                self._on_frame(channel, frame)
        del buffer[:offset]

    # -- frames ----------------------------------------------------------------------------------

    def _on_frame(self, channel: int, frame: Any) -> None:
        # Every frame pamqp read (those of _read_frame's fast path can also come this way).
        if isinstance(frame, ContentBody):
            self._on_body(frame.value)
        elif isinstance(frame, ContentHeader):
            self._on_header(frame.body_size, frame.properties)
        elif isinstance(frame, spec.Basic.Deliver | spec.Basic.Return):
            self._incoming = _Incoming(frame)
        elif isinstance(frame, spec.Basic.Ack):
            self._on_confirm(frame.delivery_tag, frame.multiple, None)
        elif isinstance(frame, spec.Basic.Nack):
            self._on_confirm(
                frame.delivery_tag, frame.multiple, WireClosed("the broker refused the message")
            )
        elif isinstance(frame, Heartbeat):
            pass
        elif isinstance(frame, spec.Basic.Cancel):
            self._consumers.pop(frame.consumer_tag or "", None)
            log.warning("amqp_consumer_cancelled_by_broker", consumer_tag=frame.consumer_tag)
        elif isinstance(frame, spec.Connection.Close | spec.Channel.Close):
            self._on_close(channel, frame)
        elif isinstance(frame, spec.Connection.CloseOk):
            if self._close_reply is not None and not self._close_reply.done():
                self._close_reply.set_result(None)
        elif isinstance(frame, spec.Connection.Blocked):
            log.warning("amqp_connection_blocked", reason=frame.reason)
        elif isinstance(frame, spec.Connection.Unblocked):
            log.info("amqp_connection_unblocked")
        elif self._rpc_reply is not None and not self._rpc_reply.done():
            self._rpc_reply.set_result(frame)
        else:
            log.warning("amqp_unexpected_frame", frame=frame.name)

    def _on_header(self, body_size: int, properties: Properties) -> None:
        incoming = self._incoming
        if incoming is None:
            return
        incoming.properties = properties
        incoming.size = body_size
        if body_size == 0:
            self._complete(b"")
        else:
            incoming.chunks = []

    def _on_body(self, chunk: bytes) -> None:
        incoming = self._incoming
        if incoming is None or incoming.chunks is None:
            return
        if not incoming.chunks and len(chunk) >= incoming.size:
            self._complete(chunk)  # the usual case: the whole body in one frame
            return
        incoming.chunks.append(chunk)
        if sum(map(len, incoming.chunks)) >= incoming.size:
            self._complete(b"".join(incoming.chunks))

    def _complete(self, body: bytes) -> None:
        incoming, self._incoming = self._incoming, None
        assert incoming is not None
        assert incoming.properties is not None
        method = incoming.method
        if isinstance(method, spec.Basic.Return):
            properties = incoming.properties
            key = properties.correlation_id or properties.message_id
            tag = self._returnable.pop(key, None) if key else None
            if tag is not None:
                self._returned.add(tag)
            return
        callback = self._consumers.get(method.consumer_tag or "")
        if callback is None:
            return  # cancelled meanwhile: unacknowledged, the broker redelivers it
        delivery = Delivery(
            method.delivery_tag or 0,
            bool(method.redelivered),
            method.exchange or "",
            method.routing_key or "",
            incoming.properties,
            body,
        )
        try:
            callback(delivery)
        except Exception:  # the owner's bug must not take the connection and its frames down
            log.exception("amqp_consumer_callback_failed", consumer_tag=method.consumer_tag)

    def _on_confirm(self, delivery_tag: int, multiple: bool, error: Exception | None) -> None:
        unconfirmed = self._unconfirmed
        tags = (
            [tag for tag in unconfirmed if tag <= delivery_tag]
            if multiple
            else [delivery_tag]
            if delivery_tag in unconfirmed
            else []
        )
        for tag in tags:
            confirmed, returnable = unconfirmed.pop(tag)
            if returnable is not None and self._returnable.get(returnable) == tag:
                del self._returnable[returnable]
            if confirmed.done():
                self._returned.discard(tag)
                continue
            if tag in self._returned:
                self._returned.discard(tag)
                confirmed.set_exception(MessageReturned("no queue took the message"))
            elif error is not None:
                confirmed.set_exception(error)
            else:
                confirmed.set_result(None)

    def _on_close(self, channel: int, frame: spec.Connection.Close | spec.Channel.Close) -> None:
        reason = f"{frame.reply_code} {frame.reply_text}"
        log.warning("amqp_closed_by_broker", channel=channel, reason=reason)
        error = WireClosed(
            f"the broker closed the {'connection' if channel == 0 else 'channel'}: {reason}"
        )
        with contextlib.suppress(WireClosed):
            if channel == 0:
                self._send(spec.Connection.CloseOk(), channel=0)
            else:
                # One channel is all this connection has: without it, the connection is done.
                self._send(spec.Channel.CloseOk())
                self._send(_connection_close("channel closed"), channel=0)
        self._lost(error)
        self.abort()

    def _lost(self, reason: Exception | None) -> None:
        """Fail everything waiting on this connection, once."""
        if self.closed.done():
            return
        self.closed.set_result(reason)
        error = reason or WireClosed("the connection is closed")
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._rpc_reply is not None and not self._rpc_reply.done():
            self._rpc_reply.set_exception(error)
        for confirmed, _ in self._unconfirmed.values():
            if not confirmed.done():
                confirmed.set_exception(error)
        self._unconfirmed.clear()
        self._returnable.clear()
        self._returned.clear()
        self._consumers.clear()

    # -- writing and RPC -------------------------------------------------------------------------

    def _open_transport(self) -> asyncio.Transport:
        transport = self._transport
        if transport is None or self.closed.done() or transport.is_closing():
            raise WireClosed("the connection to the broker is closed")
        return transport

    def _write(self, transport: asyncio.Transport, data: bytes) -> None:
        # One send per turn of the event loop for everything written in it (the publishes, acks
        # and heartbeats of all the requests handled in that turn), in the order written: on
        # loopback a send costs the broker's side of the TCP work too, and was a third of the
        # gateway's CPU when each publish sent at once (py-spy, bench gateway).
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush, transport)
        self._outgoing.append(data)

    def _flush(self, transport: asyncio.Transport) -> None:
        outgoing = self._outgoing
        if not outgoing:
            return
        data = outgoing[0] if len(outgoing) == 1 else b"".join(outgoing)
        outgoing.clear()
        if transport is self._transport and not transport.is_closing():
            transport.write(data)

    def _send(self, frame: Frame, *, channel: int = _CHANNEL) -> None:
        self._write(self._open_transport(), codec.marshal(frame, channel))

    async def _rpc(self, frame: Frame, expected: type[Frame], *, channel: int = _CHANNEL) -> Frame:
        return await self._rpc_raw(codec.marshal(frame, channel), expected)

    async def _rpc_raw(self, data: bytes, expected: type[Frame]) -> Frame:
        async with self._rpc_lock:
            reply: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
            self._rpc_reply = reply
            if self.closed.done():
                raise WireClosed("the connection to the broker is closed")
            self._write(self._open_transport(), data)
            try:
                answer = await reply
            finally:
                self._rpc_reply = None
        if not isinstance(answer, expected):
            raise WireClosed(f"the broker answered {answer.name} where {expected.name} was due")
        return answer

    def _start_heartbeat(self) -> None:
        if self._heartbeat_seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        interval = self._heartbeat_seconds / 2

        def beat() -> None:
            if self.closed.done():
                return
            if loop.time() - self._last_received > self._heartbeat_seconds * 2:
                self._lost(WireClosed("the broker stopped answering (missed heartbeats)"))
                self.abort()
                return
            with contextlib.suppress(WireClosed):
                self._write(self._open_transport(), Heartbeat().marshal())
            self._heartbeat = loop.call_later(interval, beat)

        self._heartbeat = loop.call_later(interval, beat)


_OTHER, _BODY, _HEADER, _DELIVER, _ACK = range(5)


def _read_frame(data: bytes) -> tuple[int, int, Any]:
    """One whole frame: its kind (which of the hot frames, else _OTHER), channel and value."""
    frame_type, channel = data[0], int.from_bytes(data[1:3])
    if data[-1] != frames.FRAME_END:
        raise ValueError("a frame without its end octet")
    if frame_type == frames.FRAME_BODY:
        return _BODY, channel, data[7:-1]
    if frame_type == frames.FRAME_HEADER:
        return _HEADER, channel, frames.body_size_and_properties(data[7:-1])
    if frame_type == frames.FRAME_METHOD:
        index = frames.method_index(data[7:11])
        if index == frames.BASIC_ACK:
            return _ACK, channel, frames.ack(data[11:-1])
        if index == frames.BASIC_DELIVER:
            return _DELIVER, channel, frames.deliver(data[11:-1])
    _, channel, frame = codec.unmarshal(data)
    return _OTHER, channel, frame


def _connection_close(reason: str) -> spec.Connection.Close:
    # class_id and method_id name the method that failed; 0 for a close that is not an error.
    return spec.Connection.Close(reply_code=200, reply_text=reason, class_id=0, method_id=0)


Setup = Callable[[WireConnection], Awaitable[None]]


class Wire:
    """One :class:`WireConnection`, kept open: connected in the background, reconnected every
    ``reconnect_seconds`` after a loss, with ``setup`` run on each new connection before it is
    handed out."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        setup: Setup,
        confirms: bool = False,
        prefetch: int | None = None,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> None:
        self._url = url
        self._name = name
        self._setup = setup
        self._confirms = confirms
        self._prefetch = prefetch
        self._reconnect_seconds = reconnect_seconds
        self._connection: WireConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def connection(self) -> WireConnection | None:
        """The open, set-up connection; None while there is none."""
        connection = self._connection
        return connection if connection is not None and connection.is_open else None

    @property
    def is_connected(self) -> bool:
        return self.connection is not None

    def start(self) -> None:
        """Connect in the background (a broker that is not there yet is waited for)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(None), name=f"wire-{self._name}")

    async def connect(self) -> WireConnection:
        """Connect now, raising if that fails; then keep the connection as :meth:`start` does."""
        if self._task is not None:
            return await self.wait_connected()
        connection = await self._open()
        self._task = asyncio.create_task(self._run(connection), name=f"wire-{self._name}")
        return connection

    async def wait_connected(self) -> WireConnection:
        while True:
            await self._ready.wait()
            if (connection := self.connection) is not None:
                return connection
            await asyncio.sleep(0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        connection, self._connection = self._connection, None
        self._ready.clear()
        if connection is not None:
            await connection.close()

    async def _open(self) -> WireConnection:
        connection = await WireConnection.open(
            self._url, name=self._name, confirms=self._confirms, prefetch=self._prefetch
        )
        try:
            await self._setup(connection)
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _run(self, connection: WireConnection | None) -> None:
        failures = 0
        while True:
            if connection is None:
                try:
                    connection = await self._open()
                except (OSError, TimeoutError) as exc:
                    failures += 1
                    # Every second while the broker is away: one line, then one per minute.
                    if failures == 1 or failures % 60 == 0:
                        log.warning(
                            "amqp_connect_failed",
                            wire=self._name,
                            error=str(exc) or type(exc).__name__,
                        )
                    await asyncio.sleep(self._reconnect_seconds)
                    continue
                if failures:
                    log.info("amqp_reconnected", wire=self._name, after_attempts=failures)
                failures = 0
            self._connection = connection
            self._ready.set()
            # Shielded: stop() cancels this task, and must still find the connection to close.
            reason = await asyncio.shield(connection.closed)
            self._ready.clear()
            self._connection = connection = None
            log.warning("amqp_connection_lost", wire=self._name, reason=str(reason))
            await asyncio.sleep(self._reconnect_seconds)
