from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.deployer.api import routers
from modyard.deployer.consumers import subscriptions
from modyard.deployer.context import DeployerContext
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
        app.state.deployer = DeployerContext(settings, secrets, backend, reconciler)
        task = asyncio.create_task(
            reconciler.run(app.state.lifecycle.migrated), name="deployer-reconciler"
        )
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await backend.close()

    return ServiceSpec(
        settings=settings,
        title="modyard deployer",
        description="deployments of container modules on Docker: desired and observed state, logs",
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        subscriptions=subscriptions,
        resources=resources,
    )


def create_app(settings: DeployerSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
