from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.installer.api import routers
from modyard.installer.consumers import subscriptions
from modyard.installer.settings import InstallerSettings


def service_spec(settings: InstallerSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        settings=settings or InstallerSettings(),
        title="modyard installer",
        description="workspaces, installations, resolved dependency locks, configs, secrets and ACL rules",
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        subscriptions=subscriptions,
    )


def create_app(settings: InstallerSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
