"""Prometheus metrics shared by every service.

Metrics are module-level because ``prometheus_client`` keeps one process-wide registry; the
``service`` label tells services apart when several run in one process (as in tests).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "modyard_http_requests_total",
    "HTTP requests handled, by route template and status code",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "modyard_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "method", "route"],
)
EVENTS_PUBLISHED = Counter(
    "modyard_events_published_total",
    "Events confirmed by the broker, by event type",
    ["service", "type"],
)
EVENTS_RETURNED = Counter(
    "modyard_bus_returned_messages_total",
    "Messages the broker could not route (returned because mandatory was set)",
    ["service", "exchange", "routing_key"],
)
EVENTS_CONSUMED = Counter(
    "modyard_events_consumed_total",
    "Events taken off a queue, by outcome (processed, duplicate, failed, rejected)",
    ["service", "consumer", "type", "outcome"],
)
OUTBOX_PENDING = Gauge(
    "modyard_outbox_pending",
    "Outbox rows not yet confirmed by the broker, as of the relay's last pass",
    ["service"],
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "modyard_outbox_publish_failures_total",
    "Outbox rows whose publication failed and will be retried",
    ["service"],
)
DEPENDENCY_UP = Gauge(
    "modyard_dependency_up",
    "1 when a dependency (database, broker) answered the last readiness check",
    ["service", "dependency"],
)

UNPROCESSED_MESSAGES = Gauge(
    "modyard_runtime_unprocessed_messages",
    "Flow messages waiting in the runtime's dead-letter store, by why they ended there",
    ["service", "reason"],
)
DEPLOYMENTS = Gauge(
    "modyard_deployer_deployments",
    "Deployments by status (warn: a pull, health check or crash loop needs the operator)",
    ["service", "status"],
)

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
