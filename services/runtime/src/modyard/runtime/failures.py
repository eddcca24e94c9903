"""Which failures are retried, and when: the classification and the retry policy.

Classification follows Appmixer 6.4's retry mechanism:

- **Not retried** (the message goes straight to the unprocessed-message store): HTTP 400, 401,
  403, 404, 405, 406, 409, 410, 411, 422 and 451 (:data:`NOT_RETRIED_STATUSES`), every other 4xx
  except those below (a client error does not heal by waiting), 1xx and 3xx reaching a component
  as a final answer, and validation errors (``jsonschema``/``pydantic`` ``ValidationError``, any
  ``ValueError``: templates, expressions, JSON that does not decode, a URL that is not http(s)),
  plus configuration errors of the local system (``EACCES``, ``EINVAL``, ``ENOENT``).
- **Retried**: 5xx, 429, 408 (Request Timeout: a timeout, which Appmixer retries too) and 425
  (Too Early, whose whole point is "send it again later") (:data:`RETRIED_4XX_STATUSES`);
  timeouts, refused, reset or aborted connections, unreachable hosts and DNS failures.
- **Unknown** exceptions are retried, as Appmixer's ``RETRY_UNKNOWN_ERRORS`` defaults to: a
  failure nobody classified may well be transient (a module being upgraded, a dependency
  restarting), the retry budget bounds the cost and the message still reaches the
  unprocessed-message store after the last attempt. They are marked ``details["kind"] ==
  "unknown"`` so that a policy with ``retry_unknown_errors=False`` can stop that.

A :class:`RetryPolicy` holds the global settings (30 attempts, as in Appmixer; exponential backoff
from 1 s, doubling, capped at an hour) which a flow may override with :meth:`RetryPolicy.merge`,
including statuses to retry or not beyond the built-in classification.

Retries never sleep in a consumer: the engine parks the message on one of the delay queues of
:data:`DELAY_TIERS` (per-queue TTL, dead-lettered back to the work queue). A retry's delay is
rounded *up* to a tier (:func:`tier_for`: waiting a little longer is harmless); a ``core.delay``
node, which asked for an exact wait, is parked over several tiers (:func:`decompose_delay`).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import aiohttp
import jsonschema
import pydantic

from modyard.common.backoff import Backoff
from modyard.runtime.components.base import ComponentError

#: Appmixer's non-retriable client errors.
NOT_RETRIED_STATUSES: Final = frozenset({400, 401, 403, 404, 405, 406, 409, 410, 411, 422, 451})
#: The 4xx statuses that are retried: Request Timeout, Too Early, Too Many Requests.
RETRIED_4XX_STATUSES: Final = frozenset({408, 425, 429})
#: OS errors that say the local system is misconfigured: retrying cannot help (as in Appmixer).
_CONFIGURATION_ERRNOS: Final = frozenset({errno.EACCES, errno.EINVAL, errno.ENOENT})

#: Delay-queue TTLs in seconds; the engine declares one queue per tier.
DELAY_TIERS: Final[tuple[int, ...]] = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

#: Kinds a classified failure carries in ``details["kind"]``.
KIND_HTTP_STATUS: Final = "http_status"
KIND_TIMEOUT: Final = "timeout"
KIND_CONNECTION: Final = "connection"
KIND_DNS: Final = "dns"
KIND_PROTOCOL: Final = "protocol"
KIND_INVALID_REQUEST: Final = "invalid_request"
KIND_VALIDATION: Final = "validation"
KIND_CONFIGURATION: Final = "configuration"
KIND_UNKNOWN: Final = "unknown"


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP answer with ``status`` is worth retrying (see the module docstring).

    5xx (and anything above, which only a broken server sends), 408, 425 and 429 are retried;
    every other status, including the 4xx outside :data:`NOT_RETRIED_STATUSES`, is not.
    """
    if status >= 500:
        return True
    return status in RETRIED_4XX_STATUSES


def status_error(
    status: int, message: str, *, details: Mapping[str, Any] | None = None
) -> ComponentError:
    """The :class:`ComponentError` for an HTTP answer with a failing ``status``."""
    return ComponentError(
        message,
        retryable=is_retryable_status(status),
        status=status,
        details={"kind": KIND_HTTP_STATUS, **(details or {})},
    )


def _causes(exc: BaseException) -> Iterable[BaseException]:
    # aiohttp raises its errors from the OSError/gaierror underneath: walk the whole chain
    # (bounded, in case of a cycle) to find what really happened.
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _failure(exc: BaseException, kind: str, *, retryable: bool, **details: Any) -> ComponentError:
    text = str(exc) or type(exc).__name__
    return ComponentError(
        text,
        retryable=retryable,
        details={"kind": kind, "exception": type(exc).__name__, **details},
    )


def classify_exception(exc: Exception) -> ComponentError:
    """The :class:`ComponentError` an exception raised while running a component stands for.

    A :class:`ComponentError` is returned as it is (the component already decided). Only
    ``Exception``: ``asyncio.CancelledError`` is a shutdown, not a failure, and must propagate.
    """
    if isinstance(exc, ComponentError):
        return exc
    if isinstance(exc, aiohttp.ClientResponseError) and not isinstance(
        exc, aiohttp.TooManyRedirects
    ):
        return status_error(
            exc.status, f"HTTP {exc.status}", details={"exception": type(exc).__name__}
        )
    chain = list(_causes(exc))
    # DNS first: aiohttp reports a failed lookup as a connector error; its cause says more.
    if any(isinstance(cause, socket.gaierror) for cause in chain):
        return _failure(exc, KIND_DNS, retryable=True)
    if isinstance(exc, TimeoutError):  # aiohttp's connect/read timeouts are TimeoutErrors too
        return _failure(exc, KIND_TIMEOUT, retryable=True)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        # Our request is wrong (a URL aiohttp cannot request, a redirect to ftp:): the same
        # request fails the same way next time.
        return _failure(exc, KIND_INVALID_REQUEST, retryable=False)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return _failure(exc, KIND_PROTOCOL, retryable=False)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        # Refused, unreachable, reset, the server hanging up before or while answering, TLS
        # failures: the network or the peer, transient.
        return _failure(exc, KIND_CONNECTION, retryable=True)
    if isinstance(exc, jsonschema.ValidationError | pydantic.ValidationError | ValueError):
        # pydantic's ValidationError, json.JSONDecodeError, TemplateError, ExpressionError are all
        # ValueErrors; jsonschema's is not. The same input fails the same way every time.
        return _failure(exc, KIND_VALIDATION, retryable=False)
    if isinstance(exc, ConnectionError):
        # ConnectionRefused/Reset/Aborted, BrokenPipe: from components that use sockets directly.
        return _failure(exc, KIND_CONNECTION, retryable=True)
    if isinstance(exc, OSError):
        if exc.errno in _CONFIGURATION_ERRNOS:
            return _failure(exc, KIND_CONFIGURATION, retryable=False, errno=exc.errno)
        return _failure(exc, KIND_CONNECTION, retryable=True, errno=exc.errno)
    return _failure(exc, KIND_UNKNOWN, retryable=True)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header's wait in seconds (delta-seconds or an HTTP date), or ``None``."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- delay tiers ----------------------------------------------------------------------------------


def tier_for(delay_seconds: float) -> int:
    """The smallest tier that waits at least ``delay_seconds``, capped at the largest tier."""
    for tier in DELAY_TIERS:
        if tier >= delay_seconds:
            return tier
    return DELAY_TIERS[-1]


def decompose_delay(seconds: float) -> list[int]:
    """The tiers to park a message on, one after the other, to wait ``seconds`` (rounded to the
    nearest second): largest tiers first. ``[]`` for a wait under half a second.

    For ``core.delay``, which asked for an exact wait: 7 s is ``[5, 2]``, a day is 24 hops of an
    hour. The engine parks on the first tier and carries the rest in the message.
    """
    remaining = max(0, round(seconds))
    hops: list[int] = []
    for tier in reversed(DELAY_TIERS):
        count, remaining = divmod(remaining, tier)
        hops.extend([tier] * count)
    return hops


# --- retry policy ---------------------------------------------------------------------------------

#: A ceiling for ``max_attempts``: past it a typo (300000) would keep messages for years.
MAX_ATTEMPTS_LIMIT: Final = 1000


def _statuses(name: str, value: Any) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of HTTP statuses, got {value!r}")
    statuses = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
            raise ValueError(f"{name} must hold HTTP statuses (100..599), got {item!r}")
        statuses.add(item)
    return frozenset(statuses)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a failing message is attempted and how long it waits in between.

    ``attempt`` is 1-based and counts deliveries: attempt 1 is the first delivery, so with
    ``max_attempts=30`` a message is retried at most 29 times. The wait after failed attempt
    ``n`` is ``base_delay_seconds * multiplier ** (n - 1)``, capped at ``max_delay_seconds``
    (itself at most the largest delay tier, so that the policy never promises a wait the queues
    cannot give).

    ``retry_statuses``/``no_retry_statuses`` override the classification for errors that carry
    an HTTP status (say, retry 404 for an API with eventually consistent reads); a status in both
    is refused. ``retry_unknown_errors=False`` stops retrying errors nobody classified.
    """

    max_attempts: int = 30
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 3600.0
    multiplier: float = 2.0
    retry_statuses: frozenset[int] | None = None
    no_retry_statuses: frozenset[int] | None = None
    retry_unknown_errors: bool = True

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise ValueError(f"max_attempts must be an integer, got {attempts!r}")
        if not 1 <= attempts <= MAX_ATTEMPTS_LIMIT:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}")
        base = _number("base_delay_seconds", self.base_delay_seconds)
        cap = _number("max_delay_seconds", self.max_delay_seconds)
        multiplier = _number("multiplier", self.multiplier)
        if base <= 0:
            raise ValueError("base_delay_seconds must be above 0")
        if not base <= cap <= DELAY_TIERS[-1]:
            raise ValueError(
                f"max_delay_seconds must be between base_delay_seconds ({base:g}) and "
                f"{DELAY_TIERS[-1]} (the largest delay tier)"
            )
        if not 1 <= multiplier <= 10:
            raise ValueError("multiplier must be between 1 and 10")
        retry = _statuses("retry_statuses", self.retry_statuses)
        no_retry = _statuses("no_retry_statuses", self.no_retry_statuses)
        both = (retry or frozenset()) & (no_retry or frozenset())
        if both:
            raise ValueError(
                f"statuses {sorted(both)} are in both retry_statuses and no_retry_statuses"
            )
        if not isinstance(self.retry_unknown_errors, bool):
            raise ValueError("retry_unknown_errors must be true or false")
        # Normalised (lists → frozensets, ints → floats) so that equal policies compare equal.
        object.__setattr__(self, "base_delay_seconds", base)
        object.__setattr__(self, "max_delay_seconds", cap)
        object.__setattr__(self, "multiplier", multiplier)
        object.__setattr__(self, "retry_statuses", retry)
        object.__setattr__(self, "no_retry_statuses", no_retry)

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an integer from 1, got {attempt!r}")
        # No jitter: the delay is rounded up to a delay tier (a queue), which would undo it.
        backoff = Backoff(
            base=self.base_delay_seconds,
            cap=self.max_delay_seconds,
            factor=self.multiplier,
            jitter=0,
        )
        return backoff.ceiling(attempt)

    def next_delay(self, error: ComponentError, attempt: int) -> float:
        """:meth:`delay_for`, lengthened to the server's ``Retry-After`` when it asked for more
        (``details["retry_after_seconds"]``, set by ``core.http``), still within the cap."""
        delay = self.delay_for(attempt)
        details = error.details if isinstance(error.details, Mapping) else {}
        asked = details.get("retry_after_seconds")
        if isinstance(asked, int | float) and not isinstance(asked, bool) and math.isfinite(asked):
            delay = max(delay, min(float(asked), self.max_delay_seconds))
        return delay

    def is_retryable(self, error: ComponentError) -> bool:
        """The classification, with this policy's overrides applied."""
        if error.status is not None:
            if self.no_retry_statuses is not None and error.status in self.no_retry_statuses:
                return False
            if self.retry_statuses is not None and error.status in self.retry_statuses:
                return True
        details = error.details if isinstance(error.details, Mapping) else {}
        if not self.retry_unknown_errors and details.get("kind") == KIND_UNKNOWN:
            return False
        return error.retryable

    def should_retry(self, error: ComponentError, attempt: int) -> bool:
        """Whether the message that failed on attempt ``attempt`` (1-based) gets another one."""
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an integer from 1, got {attempt!r}")
        return attempt < self.max_attempts and self.is_retryable(error)

    def merge(self, overrides: Mapping[str, Any]) -> RetryPolicy:
        """This policy with ``overrides`` (a flow's ``retry`` settings) applied.

        Keys are the field names; ``None`` for a status list removes the override. Unknown keys
        and bad values raise ``ValueError`` naming them.
        """
        if not isinstance(overrides, Mapping):
            raise ValueError("retry overrides must be an object")
        fields = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(str(key) for key in overrides if key not in fields)
        if unknown:
            raise ValueError(f"unknown retry settings {unknown}; the settings are {sorted(fields)}")
        values = dict(overrides)
        for name in ("base_delay_seconds", "max_delay_seconds", "multiplier"):
            if name in values:
                values[name] = _number(name, values[name])
        return dataclasses.replace(self, **values)

    def to_json(self) -> dict[str, Any]:
        """The policy as JSON (what :meth:`merge` takes back)."""
        return {
            "max_attempts": self.max_attempts,
            "base_delay_seconds": self.base_delay_seconds,
            "max_delay_seconds": self.max_delay_seconds,
            "multiplier": self.multiplier,
            "retry_statuses": None if self.retry_statuses is None else sorted(self.retry_statuses),
            "no_retry_statuses": (
                None if self.no_retry_statuses is None else sorted(self.no_retry_statuses)
            ),
            "retry_unknown_errors": self.retry_unknown_errors,
        }


__all__ = [
    "DELAY_TIERS",
    "KIND_CONFIGURATION",
    "KIND_CONNECTION",
    "KIND_DNS",
    "KIND_HTTP_STATUS",
    "KIND_INVALID_REQUEST",
    "KIND_PROTOCOL",
    "KIND_TIMEOUT",
    "KIND_UNKNOWN",
    "KIND_VALIDATION",
    "MAX_ATTEMPTS_LIMIT",
    "NOT_RETRIED_STATUSES",
    "RETRIED_4XX_STATUSES",
    "RetryPolicy",
    "classify_exception",
    "decompose_delay",
    "is_retryable_status",
    "retry_after_seconds",
    "status_error",
    "tier_for",
]
