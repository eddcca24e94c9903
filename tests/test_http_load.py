"""The gateway benchmark's load generator (benchmarks.http_load) against a tiny HTTP server on
127.0.0.1: every request answered and checked, wrong answers counted as mismatched, errors,
timeouts and closed connections as lost."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ is not installed

from benchmarks import http_load

# What the server answers to a request for ``domain`` (the n-th on the server): status, body,
# or None to close the connection without answering, or "hang" to never answer.
Answer = Callable[[str, int], tuple[int, bytes] | str | None]


def right(domain: str, n: int) -> tuple[int, bytes]:
    return 200, json.dumps({"result": {"domain": domain, "n": n}}).encode()


@asynccontextmanager
async def server(answer: Answer) -> AsyncIterator[str]:
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                assert b"authorization: bearer secret" in head.lower()
                domain = json.loads(await reader.readexactly(length))["payload"]["domain"]
                served += 1
                reply = answer(domain, served)
                if reply == "hang":
                    await reader.read()  # until the client gives up and closes
                if not isinstance(reply, tuple):
                    break
                status, body = reply
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


DOMAINS = [f"bench-{n}.com" for n in range(4)]


async def run(answer: Answer, requests: int = 200, timeout: float = 5) -> http_load.LoadResult:
    async with server(answer) as url:
        return await http_load.run(url, "/act", "secret", DOMAINS, requests, timeout=timeout)


async def test_every_request_answered_and_checked() -> None:
    result = await run(right)
    assert (result.answered, result.lost, result.mismatched) == (200, 0, 0)
    assert result.elapsed > 0
    assert result.cpu_seconds > 0


async def test_another_connections_domain_is_mismatched() -> None:
    def swapped(domain: str, n: int) -> tuple[int, bytes]:
        return right("bench-other.com" if n % 10 == 0 else domain, n)

    result = await run(swapped)
    assert (result.answered, result.lost, result.mismatched) == (200, 0, 20)


async def test_errors_and_closed_connections_are_lost() -> None:
    def failing(domain: str, n: int) -> tuple[int, bytes] | None:
        if n % 10 == 0:
            return 500, b'{"error": "boom"}'
        if n % 10 == 5:
            return None  # closed mid-request: the generator reopens the connection
        return right(domain, n)

    result = await run(failing)
    assert (result.answered, result.lost, result.mismatched) == (160, 40, 0)


async def test_a_response_that_never_comes_is_lost() -> None:
    def hanging(domain: str, n: int) -> tuple[int, bytes] | str:
        return "hang" if n == 3 else right(domain, n)

    result = await run(hanging, requests=20, timeout=0.3)
    assert (result.answered, result.lost, result.mismatched) == (19, 1, 0)


async def test_a_connection_the_server_closed_refuses_a_request_at_once() -> None:
    """A keep-alive connection the server closed while it sat idle (uvicorn ends one after 5 s)
    says so when a request is given to it, instead of swallowing the request: the runtime
    benchmark's open loop counted such requests as webhooks not accepted, 30 s later."""

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # the server's keep-alive timeout, while the client holds it idle

    listening = await asyncio.start_server(answer_then_close, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(http_load._Connection, "127.0.0.1", port)
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        first = await connection.request(request, timeout=5)
        assert first.status == 202
        assert connection.usable
        await asyncio.sleep(0.3)  # the server closes it meanwhile
        assert not connection.usable
        # Refused as closed (not a TimeoutError after the request's 5 s, as before the check).
        with pytest.raises(ConnectionError, match="before the request"):
            await connection.request(request, timeout=5)
    finally:
        listening.close()
        await listening.wait_closed()
