from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI

from modyard.common.app_factory import Lifecycle, ServiceSpec, build_service_app
from modyard.common.bus.connection import Bus
from modyard.jsrunner import isolation as isolation_check
from modyard.jsrunner.accounts.endpoints import router as auth_calls_router
from modyard.jsrunner.ahead import AheadOfCalls
from modyard.jsrunner.children.endpoints import router as children_router
from modyard.jsrunner.consumer import RequestConsumer
from modyard.jsrunner.context import SLOT, RunnerContext
from modyard.jsrunner.context_api import ContextApi
from modyard.jsrunner.debug.endpoints import router as debug_router
from modyard.jsrunner.http_bridge import HttpBridge
from modyard.jsrunner.modules import ModuleStore
from modyard.jsrunner.npm import InstallFailed
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.registry_client import RegistryClient
from modyard.jsrunner.runner import JsRunner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.jsrunner.slingr.host import InstallerStorage, SlingrHost

log = structlog.get_logger(__name__)


def service_spec(settings: JsRunnerSettings | None = None) -> ServiceSpec:
    settings = settings or JsRunnerSettings()
    # Installer events prepare module versions ahead of their first call (ahead.py); the runner
    # they use exists once the app's resources are open.
    runners: list[JsRunner] = []
    ahead = AheadOfCalls(settings, lambda: runners[0] if runners else None)

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        # A missing sandbox layer stops a production start here, before any request is taken.
        isolation = await isolation_check.probe(settings)
        isolation_check.check(isolation, settings)
        bus: Bus = app.state.bus
        lifecycle: Lifecycle = app.state.lifecycle
        registry = RegistryClient(settings)
        store = ModuleStore(settings, registry)
        bridge = HttpBridge(settings)
        pool = ChildPool(settings, isolation, bridge.perform_for)
        pool.proxy_clients = bridge.clients
        runner = JsRunner(settings, isolation, store, pool)
        runners[:] = [runner]
        runner.use_context_api(ContextApi(settings, app.state.database))
        # Slingr packages' sys.storage and sys.events (docs/slingr.md).
        slingr_storage = InstallerStorage(settings)
        runner.slingr_configs = slingr_storage.effective_config
        runner.slingr_listeners = slingr_storage.listener_url
        pool.rpc = SlingrHost(slingr_storage, bus, runner.handle).wrap(pool.rpc)
        consumer = RequestConsumer(settings, bus, runner)
        bus.add_topology(consumer.declare)
        SLOT.attach(app, RunnerContext(runner, isolation))

        async def prepare() -> None:
            try:
                await store.prepare_base()
            except InstallFailed as exc:
                # Components that bring their own dependencies still run; the rest fail with
                # "Cannot find module", which says what is missing.
                log.error("js_base_layer_failed", error=exc.excerpt)
                store.base_paths = (settings.node_dir / "base" / "shims",)
            consumer.ready.set()
            ahead.ready.set()

        lifecycle.tasks += [
            asyncio.create_task(prepare(), name="js-base-layer"),
            asyncio.create_task(pool.reap_forever(), name="js-child-reaper"),
        ]
        try:
            yield
        finally:
            await ahead.close()
            await pool.close()
            await bridge.aclose()
            await registry.close()
            await slingr_storage.close()

    return ServiceSpec(
        settings=settings,
        title="modyard js-runner",
        description="Appmixer components in sandboxed Node.js processes, for the runtime's js executor",
        migrations=Path(__file__).parent / "migrations",
        routers=[children_router, debug_router, auth_calls_router],
        subscriptions=[ahead.subscription()],
        resources=resources,
    )


def create_app(settings: JsRunnerSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
