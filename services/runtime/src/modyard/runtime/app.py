from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.runtime.api import routers
from modyard.runtime.consumers import subscriptions
from modyard.runtime.settings import RuntimeSettings


def service_spec(settings: RuntimeSettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        settings=settings or RuntimeSettings(),
        title="modyard runtime",
        description="flows, triggers, executions, retries, the dead-letter store and system webhooks",
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        subscriptions=subscriptions,
    )


def create_app(settings: RuntimeSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
