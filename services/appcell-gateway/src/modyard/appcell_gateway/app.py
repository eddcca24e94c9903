from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from aio_pika.abc import AbstractExchange
from fastapi import FastAPI

from modyard.appcell_gateway.broker_admin import BrokerAdmin
from modyard.appcell_gateway.cells.action_lane import ActionCallLane
from modyard.appcell_gateway.cells.endpoints import router as cells_router
from modyard.appcell_gateway.cells.store import CellCache
from modyard.appcell_gateway.consumers import installation_news, subscriptions_for
from modyard.appcell_gateway.context import SLOT, GatewayContext
from modyard.appcell_gateway.dispatch import Dispatcher
from modyard.appcell_gateway.ingress import Ingress
from modyard.appcell_gateway.pipeline import Pipeline
from modyard.appcell_gateway.request_log.endpoints import router as requests_router
from modyard.appcell_gateway.request_log.service import RequestLog
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.appcell_gateway.ui.endpoints import router as ui_router
from modyard.appcell_gateway.upstream import InstallerClient, RegistryClient
from modyard.common.app_factory import Lifecycle, ServiceSpec, build_service_app
from modyard.common.auth import verified_tokens
from modyard.common.bus.connection import Bus
from modyard.common.db.database import Database
from modyard.common.db.secret_rotation import EncryptedColumn


def service_spec(settings: GatewaySettings | None = None) -> ServiceSpec:
    settings = settings or GatewaySettings()
    contexts: list[GatewayContext] = []

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        database: Database = app.state.database
        bus: Bus = app.state.bus
        lifecycle: Lifecycle = app.state.lifecycle
        registry = RegistryClient(settings)
        installer = InstallerClient(settings)
        broker = BrokerAdmin(settings)
        cells = CellCache(database, refresh_seconds=settings.catalogue_refresh_seconds)
        requests = RequestLog(
            database,
            database_url=settings.database_url,
            batch_size=settings.request_log_batch_size,
            flush_seconds=settings.request_log_flush_seconds,
            retention_hours=settings.request_log_retention_hours,
        )

        def default_exchange() -> AbstractExchange:
            exchange = dispatcher.default_exchange
            assert exchange is not None, "the topology is declared before messages arrive"
            return exchange

        # One memory of verified tokens for the HTTP routes (common auth) and the AMQP ingress.
        tokens = verified_tokens(app)
        # The ingress and the dispatcher need each other: the closures read them once both exist.
        ingress = Ingress(tokens, lambda: pipeline, default_exchange)
        dispatcher = Dispatcher(
            bus,
            amqp_url=settings.amqp_url,
            on_ingress=ingress.on_message,
            ingress_prefetch=settings.ingress_prefetch,
        )
        pipeline = Pipeline(
            cells, installer, dispatcher, requests, timeout_seconds=settings.request_timeout_seconds
        )
        bus.add_topology(dispatcher.declare)
        context = GatewayContext(
            settings=settings,
            database=database,
            registry=registry,
            installer=installer,
            broker=broker,
            secrets=settings.secret_box(),
            cells=cells,
            dispatcher=dispatcher,
            requests=requests,
            pipeline=pipeline,
            tokens=tokens,
        )
        contexts[:] = [context]
        SLOT.attach(app, context)
        bus.add_topology(installation_news(context))

        async def after_migrations(work: Callable[[], Awaitable[None]]) -> None:
            # The request log writes to the gateway's tables: not before they exist.
            await lifecycle.migrated.wait()
            await work()

        lifecycle.tasks.append(
            asyncio.create_task(after_migrations(requests.run), name="request-log")
        )
        # No gc.freeze() of its own: the common start path freezes a serving process's heap once
        # it is ready (process_heap), and leaves a test process's collector alone.
        dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()
            await registry.close()
            await installer.close()
            await broker.close()

    return ServiceSpec(
        settings=settings,
        title="modyard appcell-gateway",
        description="the cell catalogue, the request log and cell credentials: the Billia -> AMQP -> Cell path",
        migrations=Path(__file__).parent / "migrations",
        routers=[cells_router, requests_router, ui_router],
        subscriptions=subscriptions_for(lambda: contexts[0]),
        resources=resources,
        encrypted_columns=(EncryptedColumn("cells", "amqp_password"),),
        middleware=(ActionCallLane,),
    )


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
