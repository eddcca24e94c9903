"""Request and correlation ids, carried in context variables.

The request id names one HTTP request or one consumed message; the correlation id follows a piece of
work across services: it arrives in ``X-Correlation-ID`` (or as the ``correlationid`` extension of a
CloudEvent), is put on every event published while handling it, and shows up in every log line.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import structlog

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"

_request_id: ContextVar[str | None] = ContextVar("modyard_request_id", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("modyard_correlation_id", default=None)

# Ids from outside are echoed into logs and headers: accept only short, plain tokens.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_id() -> str:
    """32 hex digits, like a uuid4's, for every request and consumed message without an id.

    Not uuid4: it reads the kernel's random source each time (4.3 µs against 0.35 here, on
    every request of every service). An id names a request in logs and headers and guards
    nothing, so the process's Mersenne Twister will do; ``random`` reseeds it in a forked child,
    so worker processes do not repeat each other's ids."""
    return "%032x" % random.getrandbits(128)  # noqa: UP031 - faster than an f-string


def sanitize_id(value: str | None) -> str | None:
    if value and _SAFE_ID.match(value):
        return value
    return None


def current_request_id() -> str | None:
    return _request_id.get()


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextmanager
def bound_context(
    *, request_id: str | None = None, correlation_id: str | None = None
) -> Iterator[tuple[str, str]]:
    """Bind ids for the duration of a request or a consumed message (and into every log line)."""
    rid = sanitize_id(request_id) or new_id()
    cid = sanitize_id(correlation_id) or rid
    request_token = _request_id.set(rid)
    correlation_token = _correlation_id.set(cid)
    # bind/reset by token rather than ``bound_contextvars``, a second context manager that also
    # copies the whole logging context: 1.1 against 3.7 µs, on every request and message.
    log_tokens = structlog.contextvars.bind_contextvars(request_id=rid, correlation_id=cid)
    try:
        yield rid, cid
    finally:
        structlog.contextvars.reset_contextvars(**log_tokens)
        _request_id.reset(request_token)
        _correlation_id.reset(correlation_token)
