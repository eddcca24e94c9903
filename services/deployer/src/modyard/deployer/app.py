from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.deployer.api import routers
from modyard.deployer.consumers import subscriptions
from modyard.deployer.settings import DeployerSettings


def service_spec(settings: DeployerSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        settings=settings or DeployerSettings(),
        title="modyard deployer",
        description="deployments of container modules on Docker: desired and observed state, logs",
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        subscriptions=subscriptions,
    )


def create_app(settings: DeployerSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
