"""Prometheus metrics shared by every service.

Metrics are module-level because ``prometheus_client`` keeps one process-wide registry; the
``service`` label tells services apart when several run in one process (as in tests).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.openmetrics import exposition as openmetrics

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
    "Events taken off a queue, by outcome (processed, duplicate, failed, refused, rejected)",
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

OUTBOX_OLDEST_AGE = Gauge(
    "modyard_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row not yet confirmed by the broker (0 when none), as of the "
    "relay's last pass: a backlog that grows older means events are not leaving",
    ["service"],
)
QUEUE_MESSAGES = Gauge(
    "modyard_queue_messages",
    "Messages in a queue (ready, not yet delivered), from a passive declare every few seconds",
    ["service", "queue"],
)
QUEUE_CONSUMERS = Gauge(
    "modyard_queue_consumers",
    "Consumers of a queue, from a passive declare every few seconds",
    ["service", "queue"],
)
DEPLOYMENT_RESTARTS = Counter(
    "modyard_deployer_restarts_total",
    "Containers the deployer restarted after a crash or a failed health check",
    ["service"],
)
SECRET_KEYS = Gauge(
    "modyard_secret_keys_configured",
    "Encryption keys configured (MODYARD_<SERVICE>_SECRET_KEYS): more than one means a rotation "
    "is under way until rotate-secrets has run and the old key is removed",
    ["service"],
)
SECRET_OLDEST_ENCRYPTION = Gauge(
    "modyard_secret_oldest_encryption_timestamp_seconds",
    "When the oldest stored secret was encrypted (its Fernet token's time; 0 when none): "
    "rotate-secrets re-encrypts them after a key rotation, so an old value means it is overdue",
    ["service"],
)

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # OpenMetrics when the scraper asks for it (Prometheus does): the only format that carries
    # the histograms' exemplars (trace ids).
    if "application/openmetrics-text" in request.headers.get("accept", ""):
        exposition = openmetrics.generate_latest(REGISTRY)  # type: ignore[no-untyped-call]
        return Response(exposition, media_type=openmetrics.CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
