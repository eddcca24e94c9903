"""The worker core shared by cells (the gateway's requests) and module workers (the runtime's
``amqp`` executor): one consumer loop, two adapters (:mod:`.cell`, :mod:`.module`).

Both protocols are request/reply over RabbitMQ: the request is a JSON message with
``correlation_id`` and ``reply_to``; the reply is JSON sent back with the same ``correlation_id``,
to the exchange named by the request's ``reply-exchange`` header (the gateway's
``appcell.replies``) or, without it, through the default exchange (the runtime's convention).

What the core does for every adapter:

- **Concurrency**: ``prefetch`` requests are delivered at once; at most ``concurrency`` run their
  handler at the same time (synchronous handlers run in threads, so a blocking vendor SDK does
  not stall the others).
- **Acknowledgement** after the reply is published; a worker that dies mid-request leaves the
  request to be redelivered.
- **Redelivery policy**: successful answers are remembered by request id (``message_id``) for
  ``replay_seconds`` (up to ``replay_size`` of them). A request seen again in that window (a
  redelivery after a lost ack, a duplicate publish) gets the remembered answer again without
  running the handler twice. Failures are not remembered: the runtime retries a failed node with
  the same message id, and a retry must run the handler again; a duplicate that arrives while the first is still running waits for
  it. A redelivered request the worker has not answered (it crashed, or another replica had it) is
  handled again: handlers must therefore be idempotent per request id, which they receive
  (``Request.request_id``) to pass on to the vendor as an idempotency key where it has one.
- **Graceful shutdown** (:meth:`Worker.stop`, SIGTERM/SIGINT under :func:`run`): stop consuming,
  finish and answer every request in flight (up to ``shutdown_timeout`` seconds), then close.
- **Structured logs**: one JSON line per request (``request_id``, what was asked, outcome,
  ``duration_ms``) through structlog, as in the services.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import structlog

from modyard.cell.wire import Delivery, Properties, Wire, WireClosed, WireConnection

log = structlog.get_logger("modyard.cell")
# structlog runs its processors before the level is checked: on the hot path, ask first.
_level = logging.getLogger("modyard.cell")

REPLY_EXCHANGE_HEADER = "reply-exchange"


class Adapter(Protocol):
    """What one protocol (cell, module worker) adds to the core."""

    #: For logs and the connection name.
    name: str

    async def declare(self, connection: WireConnection, queue: str | None) -> str:
        """The name of the queue to consume (declared or checked)."""
        ...

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """The reply body for a decoded request (errors already turned into error replies)."""
        ...

    def describe(self, request: dict[str, Any]) -> dict[str, Any]:
        """Fields that say what was asked, for the log line."""
        ...


#: Continues the caller's trace around one request: (queue, delivery, worker name) → a context the
#: request is handled in. ``modyard cell run`` (the full SDK, modyard.sdk.cell) passes the
#: platform's OpenTelemetry hook when the ``OTEL_*`` variables ask for traces; the cell SDK itself
#: depends on no tracing library.
TraceHook = Callable[[str, Delivery, str], AbstractContextManager[object]]


@dataclass(frozen=True)
class WorkerOptions:
    amqp_url: str
    #: The queue to consume; the adapter's default when None (module workers).
    queue: str | None = None
    prefetch: int = 32
    concurrency: int = 32
    shutdown_timeout: float = 30.0
    replay_seconds: float = 600.0
    replay_size: int = 10_000
    trace: TraceHook | None = None


@dataclass
class _Replay:
    """Answers by request id, oldest first, for the redelivery policy."""

    ttl: float
    size: int
    answers: OrderedDict[str, tuple[float, bytes]] = field(default_factory=OrderedDict)

    def get(self, key: str) -> bytes | None:
        found = self.answers.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: str, body: bytes) -> None:
        self.answers[key] = (time.monotonic() + self.ttl, body)
        self.answers.move_to_end(key)
        while len(self.answers) > self.size:
            self.answers.popitem(last=False)


class Worker:
    def __init__(self, adapter: Adapter, options: WorkerOptions) -> None:
        self.adapter = adapter
        self.options = options
        self._user = unquote(urlsplit(options.amqp_url).username or "") or None
        # A lean AMQP connection (modyard.cell.wire), not aio-pika: the request/reply round
        # trip is the cell's whole job, and aio-pika cost it about twice the CPU. No publisher
        # confirms: a reply and the request's ack go out on this one channel, and the broker
        # handles a channel's frames in order, so a request is never acknowledged before its
        # reply was published; a reply it cannot route (the caller is gone) has nobody to reach,
        # confirmed or not.
        self._wire = Wire(
            options.amqp_url,
            name=f"modyard-worker-{adapter.name}",
            setup=self._setup,
            prefetch=options.prefetch,
        )
        self._queue: str | None = None
        self._consumer: tuple[WireConnection, str] | None = None
        self._stopping = False
        self._semaphore = asyncio.Semaphore(options.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._running: dict[str, asyncio.Future[bytes]] = {}
        self._replay = _Replay(options.replay_seconds, options.replay_size)
        self._stopped = asyncio.Event()
        self.handled = 0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        """Connect and consume; raises if the first connection fails. A connection lost later is
        restored every second, as long as the worker runs."""
        await self._wire.connect()
        log.info(
            "worker_started",
            worker=self.adapter.name,
            queue=self._queue,
            prefetch=self.options.prefetch,
            concurrency=self.options.concurrency,
        )

    async def _setup(self, connection: WireConnection) -> None:
        self._queue = await self.adapter.declare(connection, self.options.queue)
        if self._stopping:
            return  # reconnected while draining: finish what is in flight, take nothing new

        def on_delivery(message: Delivery) -> None:
            task = asyncio.get_running_loop().create_task(self._process(message, connection))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

        tag = await connection.consume(self._queue, on_delivery, no_ack=False)
        self._consumer = (connection, tag)

    async def stop(self) -> None:
        """Stop taking requests, answer those in flight, close."""
        self._stopping = True
        consumer, self._consumer = self._consumer, None
        if consumer is not None and consumer[0].is_open:
            try:
                # Bounded: a connection the broker closed (a revoked user) never answers.
                async with asyncio.timeout(5):
                    await consumer[0].cancel(consumer[1])
            except (WireClosed, TimeoutError) as exc:  # the connection may already be gone
                log.warning("worker_cancel_failed", error=str(exc) or type(exc).__name__)
        if self._in_flight:
            log.info("worker_draining", in_flight=len(self._in_flight))
            _, pending = await asyncio.wait(
                set(self._in_flight), timeout=self.options.shutdown_timeout
            )
            if pending:
                log.warning("worker_abandoned_requests", count=len(pending))
                for task in pending:
                    task.cancel()
        await self._wire.stop()
        self._stopped.set()
        log.info("worker_stopped", worker=self.adapter.name, handled=self.handled)

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def _process(self, message: Delivery, connection: WireConnection) -> None:
        trace = self.options.trace
        if trace is not None:
            # The caller's trace (the runtime's node, the gateway's request) continues here.
            with trace(self._queue or message.routing_key, message, self.adapter.name):
                await self._process_message(message, connection)
            return
        await self._process_message(message, connection)

    async def _process_message(self, message: Delivery, connection: WireConnection) -> None:
        properties = message.properties
        key = properties.message_id or properties.correlation_id or ""
        started = time.perf_counter()
        described: dict[str, Any] = {}
        remembered = self._replay.get(key) if key else None
        outcome = "replayed"
        if remembered is not None:
            body = remembered
        elif key in self._running:
            body = await asyncio.shield(self._running[key])
            outcome = "duplicate"
        else:
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            if key:
                self._running[key] = future
            try:
                body, outcome, described = await self._run(message)
                future.set_result(body)
                if key and outcome == "ok":
                    self._replay.put(key, body)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # retrieved: duplicates re-raise it themselves
                raise
            finally:
                self._running.pop(key, None)
        try:
            self._reply(connection, properties, body)
            connection.ack(message.delivery_tag)
        except WireClosed:
            # The connection that delivered the request is gone: the broker gives the request
            # again (redelivered) and the replay memory answers it without running it twice.
            log.warning("worker_reply_lost_connection", request_id=key)
            return
        self.handled += 1
        if _level.isEnabledFor(logging.INFO):
            log.info(
                "request_handled",
                worker=self.adapter.name,
                request_id=key,
                correlation_id=properties.correlation_id,
                redelivered=message.redelivered,
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                **described,
            )

    async def _run(self, message: Delivery) -> tuple[bytes, str, dict[str, Any]]:
        try:
            request = json.loads(message.body)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            reply: dict[str, Any] = {
                "error": {
                    "message": f"the request is not a JSON object: {exc}",
                    "status": 400,
                    "retryable": False,
                }
            }
            return _encode(reply), "error", {}
        request.setdefault("request_id", message.properties.message_id)
        async with self._semaphore:
            reply = await self.adapter.handle(request)
        return _encode(reply), "error" if "error" in reply else "ok", self.adapter.describe(request)

    def _reply(self, connection: WireConnection, request: Properties, body: bytes) -> None:
        if not request.reply_to:
            return
        exchange = (request.headers or {}).get(REPLY_EXCHANGE_HEADER) or ""
        if isinstance(exchange, bytes):
            exchange = exchange.decode()
        connection.publish(
            str(exchange),
            request.reply_to,
            body,
            Properties(
                content_type="application/json",
                correlation_id=request.correlation_id,
                # RabbitMQ checks user_id against the connection's user: the gateway trusts it.
                user_id=self._user,
            ),
        )


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, separators=(",", ":"), default=str).encode()


Handler = Callable[..., Any]


async def call_handler(handler: Handler, *args: Any) -> Any:
    """Await an async handler; run a synchronous one in a thread."""
    if asyncio.iscoroutinefunction(handler):
        return await handler(*args)
    result = await asyncio.to_thread(handler, *args)
    if isinstance(result, Awaitable):
        return await result
    return result
