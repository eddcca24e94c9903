from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.registry.consumers import subscriptions
from modyard.registry.context import SLOT, RegistryContext
from modyard.registry.manifest_schema.endpoints import router as manifest_schema_router
from modyard.registry.modules.endpoints import router as modules_router
from modyard.registry.settings import RegistrySettings


def service_spec(settings: RegistrySettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        settings=settings or RegistrySettings(),
        title="modyard registry",
        description="modules, immutable versions, archives, bundled schemas and format adapters",
        migrations=Path(__file__).parent / "migrations",
        routers=[modules_router, manifest_schema_router],
        subscriptions=subscriptions,
    )


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    app = build_service_app(service_spec(settings))
    SLOT.attach(app, RegistryContext(settings=settings))
    return app
