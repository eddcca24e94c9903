"""The services' HTTP protocol: one write per loop turn, with the bytes and their order unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from modyard.common.http_server import CoalescingHttpToolsProtocol, CoalescingTransport
from modyard.testing.polling import eventually
from modyard.testing.services import free_port


class RecordingTransport(asyncio.Transport):
    """The real transport's side of the wrapper: what it was asked to write, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_the_writes_of_one_loop_turn_leave_as_one_write_in_order() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b'{"a":1}')
    assert real.writes == []  # nothing sent before the turn ends
    assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\n") + 7
    await asyncio.sleep(0)
    assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"a":1}']
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.writes[-1] == b"next"
    assert len(real.writes) == 2


async def test_closing_sends_what_is_pending_first_and_nothing_is_written_after() -> None:
    real = RecordingTransport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert real.writes == [b"last words"]
    assert real.closed
    transport.write(b"too late")
    await asyncio.sleep(0)
    assert real.writes == [b"last words"]


async def streaming_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    size = int(scope["path"].strip("/") or 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in range(size):
        await send({"type": "http.response.body", "body": b"%d," % part, "more_body": True})
    await send({"type": "http.response.body", "body": b"end"})


@pytest.fixture
async def server() -> AsyncIterator[str]:
    port = free_port()
    config = uvicorn.Config(
        streaming_app,
        host="127.0.0.1",
        port=port,
        http=CoalescingHttpToolsProtocol,
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_a_real_server_answers_keep_alive_and_streamed_responses_intact(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for size in (0, 1, 5000, 3):
            response = await client.get(f"/{size}")
            assert response.status_code == 200
            expected = "".join(f"{part}," for part in range(size)) + "end"
            assert response.text == expected
        answers = await asyncio.gather(*(client.get(f"/{size}") for size in range(50)))
        for size, answer in enumerate(answers):
            assert answer.text.endswith(f"{size - 1},end" if size else "end")
