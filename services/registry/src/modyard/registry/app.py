from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.registry.api import routers
from modyard.registry.consumers import subscriptions
from modyard.registry.settings import RegistrySettings


def service_spec(settings: RegistrySettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        settings=settings or RegistrySettings(),
        title="modyard registry",
        description="modules, immutable versions, archives, bundled schemas and format adapters",
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        subscriptions=subscriptions,
    )


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
