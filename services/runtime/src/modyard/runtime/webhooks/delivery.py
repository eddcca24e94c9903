"""The background deliverer: POSTs pending deliveries, signed, and records every outcome.

Work is claimed in a short transaction (``FOR UPDATE SKIP LOCKED``, so replicas share it) by
pushing the row's ``next_attempt_at`` past a lease, then POSTed with no transaction or connection
held, then the outcome is written in a second short transaction. A slow receiver therefore never
holds a database connection, and a deliverer that dies mid-request leaves rows that are claimed
again once their lease runs out. 2xx is delivered; anything else (a status, a timeout, a refused
connection) is retried with exponential backoff until ``max_attempts``, then the row is ``failed``.

Every POST passes the egress policy at send time (the URL was checked when the webhook was
created, but the name may resolve elsewhere since, or the policy may have changed): the name is
resolved once and only allowed addresses are connected to. A refused destination fails the
delivery at once (``egress-refused`` and the rule in its error), without further attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp.abc import AbstractResolver
from prometheus_client import Counter
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.expression import cast

from modyard.common.backoff import Backoff
from modyard.common.db.database import Database
from modyard.common.egress.aiohttp_client import EgressClient
from modyard.common.egress.policy import PROBLEM_SLUG, EgressPolicy, EgressRefused
from modyard.common.observability import tracing
from modyard.common.secrets import SecretBox, SecretUnreadable
from modyard.runtime.webhooks.models import DeliveryStatus, SystemWebhook, WebhookDelivery
from modyard.runtime.webhooks.service import register_waker
from modyard.runtime.webhooks.signing import compute_signature, verify_signature

__all__ = ["WebhookDeliverer", "verify_signature"]

log = structlog.get_logger(__name__)

USER_AGENT = "modyard-webhooks/0.1"
CLEANUP_EVERY = timedelta(minutes=10)
#: Answers from a receiver that are kept on the delivery, to show what it said.
MAX_RESPONSE_EXCERPT = 500
MAX_ERROR_LENGTH = 2000
UNREADABLE_SECRET = (
    "not sent: no key in MODYARD_RUNTIME_SECRET_KEYS decrypts this webhook's secret "  # noqa: S105
    "(was its key removed?); put the key back or subscribe the webhook again"
)

WEBHOOK_ATTEMPTS = Counter(
    "modyard_webhook_delivery_attempts_total",
    "System webhook delivery attempts, by event and outcome (delivered, retry, failed)",
    ["event", "outcome"],
)


def _retry_after(status: int, headers: Any) -> float | None:
    """A receiver's ``Retry-After`` (seconds or HTTP date) on 429/503, if it sent one."""
    if status not in (429, 503):
        return None
    value = headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return None


@dataclass(frozen=True)
class _Claimed:
    id: uuid.UUID
    event: str
    payload: dict[str, Any]
    attempts: int
    url: str
    #: ``None`` when no configured key decrypts it (the delivery then fails, saying why).
    secret: str | None
    #: The trace of the work that enqueued it (``traceparent``/``tracestate``), if traced.
    trace: dict[str, str] | None = None


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None
    #: Another attempt cannot succeed (the egress policy refused the destination).
    final: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDeliverer:
    def __init__(
        self,
        database: Database,
        secrets: SecretBox,
        *,
        poll_interval: float = 1.0,
        max_attempts: int = 10,
        timeout: float = 5.0,
        batch_size: int = 50,
        backoff_base: float = 2.0,
        backoff_cap: float = 3600.0,
        retention: timedelta | None = timedelta(days=30),
        egress: EgressPolicy | None = None,
        resolver: AbstractResolver | None = None,
    ) -> None:
        if max_attempts < 1 or batch_size < 1 or poll_interval <= 0 or timeout <= 0:
            raise ValueError(
                "max_attempts and batch_size must be >= 1, poll_interval and timeout > 0"
            )
        self._database = database
        self._secrets = secrets
        self._poll_interval = poll_interval
        self.max_attempts = max_attempts
        self._timeout = timeout
        self._batch_size = batch_size
        # Persisted retries are jittered: the deliveries a receiver's outage failed together
        # come back spread out rather than all at once.
        self._backoff = Backoff(base=backoff_base, cap=backoff_cap)
        self._backoff_cap = backoff_cap
        self._failure_backoff = Backoff(base=2 * poll_interval, cap=30 * poll_interval)
        self._retention = retention
        # Deployment-wide, as the webhooks are (operators subscribe them, no workspace's).
        self._egress = egress
        # DNS as the policy's resolver wraps it (aiohttp's default; tests give their own names).
        self._resolver = resolver
        # A claimed row comes back to the pool after this, should its deliverer die mid-request.
        self._lease = timedelta(seconds=timeout * 2 + 30)
        self._client: EgressClient | None = None
        self._wakeup = asyncio.Event()
        self._last_cleanup = datetime.min.replace(tzinfo=UTC)
        register_waker(database.engine, self.wake)

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (called after commits)."""
        self._wakeup.set()

    def _http(self) -> EgressClient:
        if self._client is None or self._client.closed:
            if self._egress is None:
                from modyard.runtime.egress import gate  # the runtime's, unless given one

                self._egress = gate.current().policy
            self._client = EgressClient(
                self._egress, resolver=self._resolver, headers={"User-Agent": USER_AGENT}
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def run(self) -> None:
        """Deliver forever; any failure is logged and retried, never raised."""
        failures = 0
        try:
            while True:
                self._wakeup.clear()
                try:
                    handled = await self.deliver_once()
                    await self._cleanup_if_due()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    handled = 0
                    log.warning("webhook_deliverer_failed", error=repr(exc), failures=failures)
                if handled >= self._batch_size:
                    continue  # more may be due: no pause between full batches
                delay = self._failure_backoff.delay(failures) if failures else self._poll_interval
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a shutdown's
                # cancellation that races a wake-up, and the loop would never end.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
        finally:
            await self.aclose()

    @contextlib.asynccontextmanager
    async def running(self, ready: asyncio.Event | None = None) -> AsyncIterator[None]:
        """Run in a background task for the duration of the block (after ``ready`` is set)."""

        async def main() -> None:
            if ready is not None:
                await ready.wait()
            await self.run()

        task = asyncio.create_task(main(), name="webhook-deliverer")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def deliver_once(self) -> int:
        """Attempt one batch of due deliveries; returns how many were attempted."""
        claimed = await self._claim()
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._post_traced(item) for item in claimed))
        await self._record(list(zip(claimed, outcomes, strict=True)))
        return len(claimed)

    async def _claim(self) -> list[_Claimed]:
        async with self._database.transaction() as session:
            rows = (
                await session.execute(
                    select(
                        WebhookDelivery.id,
                        WebhookDelivery.event,
                        WebhookDelivery.payload,
                        WebhookDelivery.attempts,
                        WebhookDelivery.trace_context,
                        SystemWebhook.url,
                        SystemWebhook.secret,
                    )
                    .join(SystemWebhook, SystemWebhook.id == WebhookDelivery.webhook_id)
                    .where(
                        WebhookDelivery.status == DeliveryStatus.pending.value,
                        WebhookDelivery.next_attempt_at <= func.now(),
                        SystemWebhook.active.is_(True),
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(self._batch_size)
                    .with_for_update(of=WebhookDelivery, skip_locked=True)
                )
            ).all()
            if rows:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_([row.id for row in rows]))
                    .values(next_attempt_at=func.now() + self._lease)
                    .execution_options(synchronize_session=False)
                )
        return [
            _Claimed(
                row.id,
                row.event,
                row.payload,
                row.attempts,
                row.url,
                self._reveal(row.secret),
                row.trace_context,
            )
            for row in rows
        ]

    def _reveal(self, token: str) -> str | None:
        try:
            return self._secrets.decrypt(token).decode()
        except SecretUnreadable:
            return None

    async def _post_traced(self, item: _Claimed) -> _Outcome:
        if not tracing.ENABLED:
            return await self._post(item)
        # The POST (an HTTP client span) in the trace of the flow that enqueued the event.
        with (
            tracing.continuing(item.trace),
            tracing.span(
                f"deliver system webhook {item.event}",
                attributes={
                    "modyard.webhook.event": item.event,
                    "modyard.attempt": item.attempts + 1,
                },
            ),
        ):
            return await self._post(item)

    async def _post(self, item: _Claimed) -> _Outcome:
        if item.secret is None:
            # Unsigned would be worse than late: the receiver could not tell it from a forgery.
            return _Outcome(None, UNREADABLE_SECRET, 0)
        body = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Modyard-Event": item.event,
            "X-Modyard-Delivery": str(item.id),
            "X-Modyard-Event-Id": str(item.payload.get("id", "")),
            "X-Modyard-Attempt": str(item.attempts + 1),
            "X-Modyard-Timestamp": str(timestamp),
            "X-Modyard-Signature": compute_signature(item.secret, timestamp, body),
        }
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                # A redirect is an answer, not a delivery: receivers give their final URL.
                async with self._http().request(
                    "POST", item.url, data=body, headers=headers, follow_redirects=False
                ) as response:
                    status = response.status
                    answer_headers = response.headers
                    excerpt_bytes = await response.content.read(MAX_RESPONSE_EXCERPT * 4)
        except EgressRefused as exc:
            log.warning(
                "egress_refused",
                rule=exc.rule,
                detail=exc.detail,
                delivery_id=str(item.id),
                webhook_event=item.event,
            )
            return _Outcome(
                status_code=None,
                error=f"{PROBLEM_SLUG} ({exc.rule}): {exc.detail}"[:MAX_ERROR_LENGTH],
                duration_ms=int((time.perf_counter() - started) * 1000),
                final=True,
            )
        except Exception as exc:  # every failure to deliver is an outcome, never a crash
            if isinstance(exc, TimeoutError) and not str(exc):
                exc = TimeoutError(f"no answer within {self._timeout} s")
            return _Outcome(
                status_code=None,
                error=f"{type(exc).__name__}: {exc}".rstrip(": ")[:MAX_ERROR_LENGTH],
                duration_ms=int((time.perf_counter() - started) * 1000),
            )
        duration_ms = int((time.perf_counter() - started) * 1000)
        if 200 <= status < 300:
            return _Outcome(status, None, duration_ms)
        text = excerpt_bytes.decode("utf-8", errors="replace")
        excerpt = text[:MAX_RESPONSE_EXCERPT].strip()
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
        return _Outcome(status, error, duration_ms, _retry_after(status, answer_headers))

    async def _record(self, results: list[tuple[_Claimed, _Outcome]]) -> None:
        now = datetime.now(UTC)
        async with self._database.transaction() as session:
            for item, outcome in results:
                attempts = item.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_attempt_at": now,
                    "last_status_code": outcome.status_code,
                    "last_error": outcome.error,
                }
                retry_at: datetime | None = None
                if outcome.delivered:
                    values |= {"status": DeliveryStatus.delivered.value, "delivered_at": now}
                    result = "delivered"
                elif attempts >= self.max_attempts or outcome.final:
                    values |= {"status": DeliveryStatus.failed.value, "next_attempt_at": now}
                    result = "failed"
                else:
                    delay = self._backoff.delay(attempts)
                    if outcome.retry_after is not None:
                        delay = max(delay, min(outcome.retry_after, self._backoff_cap))
                    retry_at = now + timedelta(seconds=delay)
                    values["next_attempt_at"] = retry_at
                    result = "retry"
                entry = {
                    "attempt": attempts,
                    "at": now.isoformat(),
                    "status_code": outcome.status_code,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                    "retry_at": retry_at.isoformat() if retry_at else None,
                }
                values["attempt_log"] = WebhookDelivery.attempt_log.op("||")(cast([entry], JSONB))
                await session.execute(
                    update(WebhookDelivery)
                    # Only if still ours: a lease that ran out may have been claimed again.
                    .where(
                        WebhookDelivery.id == item.id,
                        WebhookDelivery.attempts == item.attempts,
                        WebhookDelivery.status == DeliveryStatus.pending.value,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )
                WEBHOOK_ATTEMPTS.labels(item.event, result).inc()
                log_method = log.info if result == "delivered" else log.warning
                log_method(
                    "webhook_delivery_attempted",
                    delivery_id=str(item.id),
                    webhook_event=item.event,
                    attempt=attempts,
                    outcome=result,
                    status_code=outcome.status_code,
                    error=outcome.error,
                )

    async def _cleanup_if_due(self) -> None:
        if self._retention is None:
            return
        now = datetime.now(UTC)
        if now - self._last_cleanup < CLEANUP_EVERY:
            return
        self._last_cleanup = now
        async with self._database.transaction() as session:
            await session.execute(
                delete(WebhookDelivery).where(
                    WebhookDelivery.status != DeliveryStatus.pending.value,
                    WebhookDelivery.created_at < now - self._retention,
                )
            )
