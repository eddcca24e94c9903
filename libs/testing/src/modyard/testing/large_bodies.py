"""Sending a large request body the way an attacker would, and seeing when the server answers.

HTTP clients such as httpx send the whole body before they read the answer, so they cannot show
that a server refused a body without reading it. :func:`post_large_body` writes the head and then
the body in chunks while it reads the answer, and stops sending as soon as the answer is in: its
``sent`` says how much of the body the client had pushed when the server answered, so
``sent < size`` means the server answered before it could have read everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

CHUNK = 64 * 1024


@dataclass(frozen=True)
class EarlyAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Body bytes the client had written when the answer arrived.
    sent: int

    def json(self) -> Any:
        return json.loads(self.body)


async def post_large_body(
    host: str,
    port: int,
    path: str,
    *,
    size: int,
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    content_type: str = "application/json",
    prefix: bytes = b"",
    suffix: bytes = b"",
) -> EarlyAnswer:
    """POST ``size`` bytes to ``host:port`` (with Content-Length, or chunked): ``prefix``, filler,
    ``suffix`` (a multipart part's head and its closing boundary, say)."""
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent = 0

    async def feed() -> None:
        nonlocal sent
        block = b" " * CHUNK  # JSON whitespace: a body that is valid as far as it goes
        filler_end = size - len(suffix)
        with contextlib.suppress(ConnectionError):
            while sent < size:
                if sent < len(prefix):
                    data = prefix[sent : sent + CHUNK]
                elif sent < filler_end:
                    data = block[: min(CHUNK, filler_end - sent)]
                else:
                    data = suffix[sent - filler_end :]
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
                await writer.drain()
                sent += len(data)
                await asyncio.sleep(0)  # let the answer, if any, be read between chunks
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()

    feeder = asyncio.create_task(feed())
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer_headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        body = await reader.readexactly(int(answer_headers.get("content-length", "0")))
        at_answer = sent
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return EarlyAnswer(int(status_line.split()[1]), answer_headers, body, at_answer)
