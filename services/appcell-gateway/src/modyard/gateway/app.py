from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.gateway.api import routers
from modyard.gateway.consumers import subscriptions
from modyard.gateway.settings import GatewaySettings


def service_spec(settings: GatewaySettings | None = None) -> ServiceSpec:
    return ServiceSpec(
        settings=settings or GatewaySettings(),
        title="modyard appcell-gateway",
        description="the cell catalogue, the request log and cell credentials: the Billia -> AMQP -> Cell path",
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        subscriptions=subscriptions,
    )


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
