from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fastapi import FastAPI

from modyard.common.app_factory import Lifecycle, ServiceSpec, build_service_app
from modyard.common.bus.connection import Bus
from modyard.common.bus.management import BrokerManagement
from modyard.common.db.database import Database
from modyard.common.db.secret_rotation import EncryptedColumn
from modyard.common.egress.policy import EgressPolicy
from modyard.common.observability.state_gauges import refresh_state_gauges
from modyard.runtime.apps.endpoints import router as apps_router
from modyard.runtime.automations.endpoints import router as automations_router
from modyard.runtime.automations.secret_config import SealedConfigColumn
from modyard.runtime.automations.wiring import AutomationsRuntime
from modyard.runtime.components.core import aclose_core_components
from modyard.runtime.consumers import subscriptions_for
from modyard.runtime.context import SLOT, RuntimeContext
from modyard.runtime.deployer_client import DeployerClient
from modyard.runtime.egress.endpoints import router as egress_router
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.egress.gate import install as install_egress
from modyard.runtime.engine.flow_cache import FlowCache
from modyard.runtime.engine.ledger import ExecutionLedger
from modyard.runtime.engine.scheduler import TriggerScheduler
from modyard.runtime.engine.topology import RuntimeTopology
from modyard.runtime.engine.worker import NodeWorker
from modyard.runtime.executors import AmqpExecutor, HttpExecutor, JsExecutor, ModuleExecutors
from modyard.runtime.failures import RetryPolicy
from modyard.runtime.flows.endpoints import router as flows_router
from modyard.runtime.flows.events import EventGuard
from modyard.runtime.flows.hook_endpoints import router as hooks_router
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.listeners.endpoints import router as listeners_router
from modyard.runtime.replica_news import ReplicaNews, drop_copies_on_news
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.unprocessed import service as unprocessed
from modyard.runtime.unprocessed.endpoints import router as unprocessed_router
from modyard.runtime.webhooks.delivery import WebhookDeliverer
from modyard.runtime.webhooks.endpoints import router as webhooks_router
from modyard.runtime.worker_access.endpoints import router as workers_router


def retry_policy(settings: RuntimeSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.retry_max_attempts,
        base_delay_seconds=settings.retry_base_delay_seconds,
        max_delay_seconds=settings.retry_max_delay_seconds,
        multiplier=settings.retry_multiplier,
    )


def service_spec(settings: RuntimeSettings | None = None) -> ServiceSpec:
    settings = settings or RuntimeSettings()
    buses: list[Bus] = []
    automations = AutomationsRuntime(settings)
    event_guard = EventGuard(
        max_depth=settings.event_max_depth,
        rate_per_second=settings.event_rate_per_second,
        burst=settings.event_burst,
    )

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        database: Database = app.state.database
        bus: Bus = app.state.bus
        buses[:] = [bus]
        lifecycle: Lifecycle = app.state.lifecycle
        # Every steerable outbound call (core.http, fetch, webhooks, the http executor) goes
        # through this gate: the deployment's egress policy and the workspaces' allow-lists.
        egress = RuntimeEgress(
            EgressPolicy.from_settings(settings),
            database,
            cache_seconds=settings.egress_cache_seconds,
        )
        install_egress(egress)
        installer = InstallerClient(settings, config_cache_seconds=settings.config_cache_seconds)
        flows = FlowCache(database, retry_policy(settings), ttl=settings.flow_cache_seconds)
        deployer = DeployerClient(settings)
        # Every process drops its copies on the change's event (automations add theirs below).
        news = ReplicaNews()
        drop_copies_on_news(news, flows, egress, installer, deployer)
        amqp = AmqpExecutor(bus, timeout_seconds=settings.component_timeout_seconds)
        management = BrokerManagement(settings, timeout=settings.management_timeout_seconds)
        executors = ModuleExecutors(
            amqp,
            HttpExecutor(deployer, timeout_seconds=settings.component_timeout_seconds),
            JsExecutor(
                amqp,
                queue=settings.js_runner_queue,
                runner_user=settings.js_runner_broker_user
                or unquote(urlsplit(settings.amqp_url).username or "guest"),
                hooks_url=settings.hooks_public_url or settings.runtime_url,
                timeout_seconds=settings.js_component_timeout_seconds,
            ),
        )
        ledger = ExecutionLedger(settings, max_size=settings.db_pool_size)
        worker = NodeWorker(
            database,
            bus,
            flows,
            installer,
            executors,
            ledger,
            source=settings.source,
            events=event_guard,
            chain_limit=settings.work_chain_limit,
        )
        topology = RuntimeTopology(
            on_work=worker.on_message,
            on_reply=amqp.on_reply,
            prefetch=settings.work_prefetch,
            consume_when_ready=bus.consume_when_ready,
        )
        amqp.reply_queue = topology.reply_queue
        bus.add_topology(topology.declare)
        secrets = settings.secret_box()
        app.state.secrets = secrets
        deliverer = WebhookDeliverer(
            database,
            secrets,
            poll_interval=settings.webhook_poll_interval_seconds,
            max_attempts=settings.webhook_max_attempts,
            timeout=settings.webhook_timeout_seconds,
        )
        SLOT.attach(
            app,
            RuntimeContext(
                settings=settings,
                installer=installer,
                bus=bus,
                flows=flows,
                executors=executors,
                webhooks=deliverer,
                management=management,
                egress=egress,
                news=news,
            ),
        )

        scheduler = TriggerScheduler(database, bus, flows, installer, executors)

        async def after_migrations(work: Callable[[], Awaitable[None]]) -> None:
            # Background work touches the runtime's tables: not before they exist.
            await lifecycle.migrated.wait()
            await work()

        if settings.webhook_delivery_enabled:
            lifecycle.tasks.append(
                asyncio.create_task(after_migrations(deliverer.run), name="webhook-deliverer")
            )
        lifecycle.tasks += [
            asyncio.create_task(after_migrations(scheduler.run), name="trigger-scheduler"),
            asyncio.create_task(
                refresh_state_gauges(
                    database,
                    lifecycle.migrated,
                    unprocessed.gauge_refresher(settings.service_name),
                    interval=settings.state_gauges_interval_seconds,
                ),
                name="unprocessed-gauge",
            ),
        ]
        await automations.start(app, news)
        bus.add_topology(news.topology())
        try:
            yield
        finally:
            await automations.aclose()
            await installer.close()
            await deployer.close()
            await management.close()
            await executors.http.close()
            await ledger.close()
            await aclose_core_components()
            await egress.aclose()
            install_egress(None)

    return ServiceSpec(
        settings=settings,
        title="modyard runtime",
        description="flows, triggers, executions, retries, the dead-letter store and system webhooks",
        migrations=Path(__file__).parent / "migrations",
        # Automations first: their endpoints are the hot path, and routes are matched in order.
        routers=[
            automations_router,
            apps_router,
            egress_router,
            flows_router,
            hooks_router,
            listeners_router,
            unprocessed_router,
            webhooks_router,
            workers_router,
        ],
        subscriptions=subscriptions_for(lambda: buses[0], event_guard) + automations.subscriptions,
        resources=resources,
        encrypted_columns=(
            EncryptedColumn("system_webhooks", "secret"),
            EncryptedColumn("app_instances", "secrets"),
            SealedConfigColumn("automation_workspaces", "config_value"),
        ),
    )


def create_app(settings: RuntimeSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
