"""A lean closed-loop HTTP/1.1 load generator for the gateway benchmark, on asyncio Protocols.

Why not aiohttp (or httpx): the benchmark machine has two cores, shared by the load generator,
the gateway and the cell being measured, so every millisecond of CPU the client spends per
request is taken from the system under test. aiohttp costs ~0.21 ms of CPU per request here;
this generator writes request bytes built once per connection and parses the answers with
httptools (llhttp, in C), a small fraction of that (the benchmark reports the figure).

Each of the clients is one keep-alive connection in a closed loop: send one request, wait for
its whole response, record its latency (from just before the write to the end of the response),
check it, send the next, until the shared count of requests is reached. A response counts as:

- lost: not 200, not complete within the timeout, or its connection closed by the server (the
  connection is then reopened for the next request);
- mismatched: 200 but its JSON ``result.domain`` is not the domain that connection asked for.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    #: When each answered request was sent (perf_counter), in the order of ``latencies``: where
    #: in time the slow ones fall (periodic stalls or steady queueing).
    starts: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    lost: int = 0
    mismatched: int = 0
    cpu_seconds: float = 0.0  # the load generator's own (this process's) CPU time

    @property
    def answered(self) -> int:
        return len(self.latencies)


@dataclass
class _Response:
    status: int
    body: bytes
    started: float
    finished: float


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection with at most one request in flight; httptools calls ``on_body``
    and ``on_message_complete`` back from ``feed_data``."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[_Response] | None = None
        self._started = 0.0
        self.usable = False  # connected, and the last response allowed keep-alive

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self.usable = True

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError("connection closed by the server"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        finished = time.perf_counter()
        body = b"".join(self._body)
        self._body.clear()
        if not self._parser.should_keep_alive():
            self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(
                _Response(self._parser.get_status_code(), body, self._started, finished)
            )

    async def request(self, data: bytes, timeout: float) -> _Response:
        assert self._transport is not None
        if not self.usable or self._transport.is_closing():
            # Written to a closed transport, a request vanishes and would count as a timeout.
            raise ConnectionError("connection closed by the server before the request")
        waiter: asyncio.Future[_Response] = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(timeout, self._fail, TimeoutError())
        self._started = time.perf_counter()
        self._transport.write(data)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        self.close()  # a late or half-parsed response must never answer the next request
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in the load generator while it measures.

    The load generator is the measuring instrument: a collection of its own heap stalls every
    client at once and is counted as the measured system's latency. A full collection of the
    benchmark process took 57-75 ms here, and the 150 slowest of 15,000 requests (the whole
    p99) were the 32 in flight during a few such pauses. The heap is frozen first, and the run's
    garbage is collected after it. The measured services keep their collector as in production.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def run(
    base_url: str,
    path: str,
    token: str,
    domains: Sequence[str],
    requests: int,
    timeout: float = 30.0,
) -> LoadResult:
    """POST ``{"payload": {"domain": <domain>}}`` to ``path``, ``requests`` times in total, over
    one connection per domain (so ``len(domains)`` concurrent clients)."""
    target = urlsplit(base_url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    url_path = target.path.rstrip("/") + path
    result = LoadResult()
    counter: Iterator[int] = iter(range(requests))

    async def connect() -> _Connection | None:
        try:
            _, connection = await asyncio.wait_for(
                asyncio.get_running_loop().create_connection(_Connection, host, port), timeout
            )
        except (OSError, TimeoutError):
            return None
        return connection

    async def client(domain: str) -> None:
        body = json.dumps({"payload": {"domain": domain}}).encode()
        request = (
            f"POST {url_path} HTTP/1.1\r\n"
            f"Host: {target.netloc}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "\r\n"
        ).encode() + body
        connection: _Connection | None = None
        try:
            for _ in counter:
                if connection is None or not connection.usable:
                    connection = await connect()
                    if connection is None:
                        result.lost += 1
                        await asyncio.sleep(0.1)  # the server is not accepting: do not spin
                        continue
                try:
                    response = await connection.request(request, timeout)
                except (ConnectionError, TimeoutError):
                    result.lost += 1
                    continue
                if response.status != 200:
                    result.lost += 1
                    continue
                result.latencies.append(response.finished - response.started)
                result.starts.append(response.started)
                try:
                    answered = json.loads(response.body)["result"]["domain"]
                except (ValueError, KeyError, TypeError):
                    answered = None
                if answered != domain:
                    result.mismatched += 1
        finally:
            if connection is not None:
                connection.close()

    with collector_paused():
        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(client(domain) for domain in domains))
        result.elapsed = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
    return result
