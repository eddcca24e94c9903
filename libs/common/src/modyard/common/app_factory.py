"""``build_service_app``: what every service's ``create_app()`` is made of.

The lifespan owns the engine, the bus and the background work. Start-up never waits for the
database or the broker: a supervisor task migrates (retrying until the database answers), then
connects the bus (retrying until the broker answers) and starts the outbox relay, while the app
already answers ``/healthz`` and reports what it waits for on ``/readyz``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Receive, Scope, Send
from tenacity import AsyncRetrying

from modyard.common import diagnostics
from modyard.common.auth import follow_token_denials
from modyard.common.backoff import STARTUP_BACKOFF
from modyard.common.body_limit import install_body_limit
from modyard.common.bus.connection import Bus
from modyard.common.bus.consumer import EventSubscription, IdempotentConsumer
from modyard.common.bus.outbox import OutboxRelay
from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate, pending_revisions
from modyard.common.db.secret_rotation import EncryptedColumn
from modyard.common.errors import install_problem_handlers
from modyard.common.logging import configure_logging
from modyard.common.observability import health, metrics, tracing
from modyard.common.observability.metrics import SECRET_KEYS
from modyard.common.observability.middleware import RequestContextMiddleware
from modyard.common.observability.queue_gauges import watch_queues
from modyard.common.observability.secret_age import watch_secret_age
from modyard.common.process_heap import settle_after_startup
from modyard.common.settings import SecretKeysSettings, ServiceSettings
from modyard.common.version import VERSION

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """What makes one service different from the others."""

    settings: ServiceSettings
    title: str
    description: str
    migrations: Path
    routers: Sequence[APIRouter] = ()
    subscriptions: Sequence[EventSubscription] = ()
    #: The service's own resources (HTTP clients, caches), opened and closed with the app.
    resources: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None
    #: Columns holding secrets encrypted with the service's keys (``rotate-secrets`` walks them).
    encrypted_columns: Sequence[EncryptedColumn] = ()
    #: ASGI middleware classes run inside the request context (ids, access log, metrics), before
    #: routing: for the rare hot path served without FastAPI's per-request machinery.
    middleware: Sequence[type[ASGIMiddleware]] = ()


class ASGIMiddleware(Protocol):
    def __init__(self, app: ASGIApp) -> None: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


@dataclass
class Lifecycle:
    """Progress of the start-up supervisor, read by ``/readyz``."""

    migrated: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop_tasks(self, grace_seconds: float = 10.0) -> None:
        """Cancel the background tasks and wait for them, but never past ``grace_seconds``.

        A task that swallows its cancellation must not hold the shutdown (and the resources
        after it) forever: it is named in the log and cancelled once more, then left behind.
        """
        for task in self.tasks:
            task.cancel()
        if not self.tasks:
            return
        done, pending = await asyncio.wait(list(self.tasks), timeout=grace_seconds)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.warning(
                    "background_task_failed", task=task.get_name(), error=repr(task.exception())
                )
        for task in pending:
            log.error("background_task_ignored_cancellation", task=task.get_name())
            task.cancel()


def build_service_app(spec: ServiceSpec) -> FastAPI:
    settings = spec.settings
    configure_logging(
        service=settings.service_name, level=settings.log_level, json=settings.log_json
    )
    # Off unless the OTEL_* variables ask for traces (observability/tracing.py).
    tracing.configure_tracing(settings.service_name)
    if isinstance(settings, SecretKeysSettings):
        keys = settings.secret_keys.get_secret_value().split(",")
        SECRET_KEYS.labels(settings.service_name).set(len([k for k in keys if k.strip()]))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        tracing.instrument_engine(database.engine)
        bus = Bus(settings)
        consumer = IdempotentConsumer(
            database,
            settings.service_name,
            [diagnostics.ping_subscription, *spec.subscriptions],
        )
        bus.add_consumer(consumer.queue_consumer(settings.consumer_delivery_limit))
        relay = OutboxRelay(database, bus, settings)
        lifecycle = Lifecycle()
        app.state.database = database
        app.state.bus = bus
        app.state.relay = relay
        app.state.lifecycle = lifecycle
        log.info("service_starting", port=settings.port)
        # The service's own resources come first: they may add bus topology and background work
        # (waiting on ``lifecycle.migrated``) before the supervisor connects the bus.
        own_resources = spec.resources(app) if spec.resources else nullcontext()
        try:
            async with own_resources:
                lifecycle.tasks.append(
                    asyncio.create_task(
                        _supervise(spec, database, bus, relay, lifecycle), name="service-supervisor"
                    )
                )
                if spec.encrypted_columns:
                    lifecycle.tasks.append(
                        asyncio.create_task(
                            watch_secret_age(
                                database,
                                lifecycle.migrated,
                                settings.service_name,
                                spec.encrypted_columns,
                            ),
                            name="secret-age",
                        )
                    )
                # Revoked tokens and workspace removals, from the installer (after the service's
                # own resources, which may name another source).
                lifecycle.tasks.append(
                    asyncio.create_task(follow_token_denials(app), name="token-denials")
                )
                try:
                    yield
                finally:
                    # Background work stops before the resources it uses are closed.
                    await lifecycle.stop_tasks()
        finally:
            await bus.close()
            await database.dispose()
            log.info("service_stopped")

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version=VERSION,
        lifespan=lifespan,
        openapi_url="/v1/openapi.json",
        telemetry=_fastapi_telemetry(),
    )
    app.state.settings = settings
    install_problem_handlers(app)
    # Starlette runs the middleware added last first: the service's own run inside the context.
    for middleware in spec.middleware:
        app.add_middleware(middleware)
    # Bodies are capped per route before anything reads them (the service's hot lanes too).
    install_body_limit(app, settings.service_name)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    tracing.instrument_app(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(diagnostics.router)
    for router in spec.routers:
        app.include_router(router)
    return app


def _fastapi_telemetry() -> TelemetryConfig | None:
    """FastAPI's own OpenTelemetry bridge, off when nothing could have configured a provider.

    It asks the three global providers on every request whether one was configured (three
    environment lookups and provider reads, 3.9 µs a request). With modyard's tracing off and
    FastAPI's auto-configuration not asked for, the answer is always no: say so once.
    """
    if tracing.ENABLED or os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return None
    return {"tracing": False, "metrics": False, "logs": False}


async def _supervise(
    spec: ServiceSpec, database: Database, bus: Bus, relay: OutboxRelay, lifecycle: Lifecycle
) -> None:
    settings = spec.settings
    async for attempt in AsyncRetrying(
        wait=STARTUP_BACKOFF.wait,
        before_sleep=lambda state: log.warning(
            "database_not_ready",
            attempt=state.attempt_number,
            error=str(state.outcome and state.outcome.exception())[:300],
        ),
    ):
        with attempt:
            if settings.migrate_on_startup:
                await migrate(database, spec.migrations)
            else:
                pending = await pending_revisions(database, spec.migrations)
                if pending:
                    raise RuntimeError(
                        f"migrations {pending} are not applied: run `modyard-{settings.service_name} migrate`"
                    )
    lifecycle.migrated.set()
    log.info("database_ready")
    # Consumers write to the service's tables, so the bus starts only after migrations.
    bus.start()
    await bus.wait_ready()
    # Ready: what start-up built stays for the process's life, what it dropped goes back (once).
    settle_after_startup()
    lifecycle.tasks.append(
        asyncio.create_task(
            watch_queues(
                bus, settings.service_name, interval=settings.state_gauges_interval_seconds
            ),
            name="queue-gauges",
        )
    )
    await relay.run()
