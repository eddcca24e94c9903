"""AMQP request/reply: the requests of one process waiting for their replies, by correlation id.

A caller takes a correlation id and a future (:meth:`PendingReplies.expect`), publishes its
request with that id and its reply queue, and waits on the future; the reply queue's consumer hands
every reply to :meth:`PendingReplies.settle`. A reply completes its request only if the broker says
it was published by the user the request was meant for (``user_id``, which RabbitMQ checks against
the publishing connection): whoever else learns a correlation id cannot answer in that user's
place. A reply nobody waits for any more (the caller timed out, or the answer came twice) is
dropped and counted: it can never reach another caller, since every request has its own id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class InvalidReply(ValueError):
    """The reply's body is not JSON."""


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Any]
    #: The broker user whose reply may complete the request (None: anyone's).
    user: str | None


class PendingReplies:
    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        # Replies only meet this process's reply queue: a random prefix and a counter keep the
        # ids unique, even when a caller sends one request twice at once.
        process = uuid.uuid4().hex[:12]
        self._ids = (f"{process}.{n:x}" for n in itertools.count())
        #: Replies that found nobody waiting.
        self.late = 0
        #: Replies from another broker user than the request's.
        self.foreign = 0

    @contextlib.contextmanager
    def expect(self, user: str | None) -> Iterator[tuple[str, asyncio.Future[Any]]]:
        """A correlation id and the future its reply completes, forgotten on leaving."""
        correlation_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = _Pending(future, user)
        try:
            yield correlation_id, future
        finally:
            self._pending.pop(correlation_id, None)

    def settle(self, correlation_id: str | None, user_id: str | None, body: bytes) -> None:
        """Complete the request ``correlation_id`` with the JSON ``body`` (or :class:`InvalidReply`)
        if ``user_id`` may answer it; otherwise drop the reply."""
        key = correlation_id or ""
        pending = self._pending.get(key)
        if pending is None or pending.future.done():
            self.late += 1
            log.info("late_reply_discarded", correlation_id=key)
            return
        if pending.user is not None and user_id != pending.user:
            self.foreign += 1
            log.warning(
                "reply_from_wrong_user_discarded",
                correlation_id=key,
                user=user_id,
                expected=pending.user,
            )
            return
        del self._pending[key]
        try:
            pending.future.set_result(json.loads(body))
        except ValueError:
            pending.future.set_exception(InvalidReply("the reply is not JSON"))
