"""A webhook receiver for tests: a real HTTP/1.1 server on 127.0.0.1 that records what it gets.

It can be told to fail the next N requests (with a status, or by dropping the connection), so
tests of the engine can assert that a system webhook was delivered, signed, and retried.
Standard library only: ``asyncio.start_server`` and just enough HTTP for ``httpx``'s requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from sqlalchemy import text

from modyard.common.db.database import Database
from modyard.runtime.webhooks.models import SystemWebhook, WebhookDelivery
from modyard.runtime.webhooks.signing import verify_signature

MAX_BODY = 10 * 1024 * 1024


async def create_webhook_tables(database: Database) -> None:
    """The webhook tables alone in the database's schema, for tests that run without migrations."""
    async with database.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}"'))
    async with database.engine.begin() as connection:
        await connection.run_sync(
            SystemWebhook.metadata.create_all,
            tables=[
                SystemWebhook.metadata.tables[SystemWebhook.__tablename__],
                WebhookDelivery.metadata.tables[WebhookDelivery.__tablename__],
            ],
        )


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    #: Header names lower-cased.
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.time)
    #: The status this receiver answered with (0: the connection was dropped).
    answered: int = 200

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        return verify_signature(
            secret,
            self.headers.get("x-modyard-timestamp"),
            self.body,
            self.headers.get("x-modyard-signature"),
        )


class WebhookReceiver:
    """``async with WebhookReceiver() as receiver:`` then point a webhook at ``receiver.url``."""

    def __init__(self, *, status: int = 200) -> None:
        self.requests: list[ReceivedRequest] = []
        self.status = status
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def fail_next(
        self, times: int, status: int = 500, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (0 drops the connection instead)."""
        self._failures.extend([(status, headers or {})] * times)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until ``count`` requests have arrived; returns all of them."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed a kept-alive connection
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = min(int(headers.get("content-length", "0")), MAX_BODY)
        body = await reader.readexactly(length) if length else b""
        status, extra_headers = self._failures.pop(0) if self._failures else (self.status, {})
        async with self._arrived:
            self.requests.append(ReceivedRequest(method, path, headers, body, answered=status))
            self._arrived.notify_all()
        if status == 0:
            writer.transport.abort()
            return False
        reason = f"{status} {HTTPStatus(status).phrase}"
        lines = [
            f"HTTP/1.1 {reason}",
            "Content-Type: text/plain",
            f"Content-Length: {len(reason)}",
            *(f"{name}: {value}" for name, value in extra_headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n" + reason).encode("latin-1"))
        await writer.drain()
        return True
