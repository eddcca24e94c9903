from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.common.db.secret_rotation import EncryptedColumn
from modyard.common.observability.state_gauges import refresh_state_gauges
from modyard.deployer.consumers import subscriptions
from modyard.deployer.context import SLOT, DeployerContext
from modyard.deployer.deployments.endpoints import router as deployments_router
from modyard.deployer.deployments.service import status_gauge_refresher
from modyard.deployer.docker_backend import DockerBackend
from modyard.deployer.reconciler import Reconciler
from modyard.deployer.settings import DeployerSettings


def service_spec(settings: DeployerSettings | None = None) -> ServiceSpec:
    settings = settings or DeployerSettings()
    # Read the keys now, so that a bad key stops the service at start-up, not at the first deploy.
    secrets = settings.secret_box()

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        backend = DockerBackend(settings)
        reconciler = Reconciler(app.state.database, backend, settings, secrets)
        SLOT.attach(app, DeployerContext(settings, secrets, backend, reconciler))
        tasks = [
            asyncio.create_task(
                reconciler.run(app.state.lifecycle.migrated), name="deployer-reconciler"
            ),
            asyncio.create_task(
                refresh_state_gauges(
                    app.state.database,
                    app.state.lifecycle.migrated,
                    status_gauge_refresher(settings.service_name),
                    interval=settings.state_gauges_interval_seconds,
                ),
                name="deployer-state-gauges",
            ),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await backend.close()

    return ServiceSpec(
        settings=settings,
        title="modyard deployer",
        description="deployments of container modules on Docker: desired and observed state, logs",
        migrations=Path(__file__).parent / "migrations",
        routers=[deployments_router],
        subscriptions=subscriptions,
        resources=resources,
        encrypted_columns=(
            EncryptedColumn("deployments", "token_encrypted"),
            EncryptedColumn("deployments", "env_encrypted"),
        ),
    )


def create_app(settings: DeployerSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
