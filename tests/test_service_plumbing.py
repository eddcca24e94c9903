"""Every service's plumbing, in process: start, migrate, health, metrics, auth and problems."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from modyard.appcell_gateway.app import create_app as create_gateway
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.common.auth import Role
from modyard.common.settings import ServiceSettings
from modyard.deployer.app import create_app as create_deployer
from modyard.deployer.settings import DeployerSettings
from modyard.installer.app import create_app as create_installer
from modyard.installer.settings import InstallerSettings
from modyard.registry.app import create_app as create_registry
from modyard.registry.settings import RegistrySettings
from modyard.runtime.app import create_app as create_runtime
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

SERVICES: dict[str, tuple[type[ServiceSettings], Callable[[Any], FastAPI]]] = {
    "registry": (RegistrySettings, create_registry),
    "installer": (InstallerSettings, create_installer),
    "runtime": (RuntimeSettings, create_runtime),
    "appcell-gateway": (GatewaySettings, create_gateway),
    "deployer": (DeployerSettings, create_deployer),
}


@pytest.fixture(params=list(SERVICES), scope="module")
async def service(
    request: pytest.FixtureRequest, infra: IsolatedInfra
) -> AsyncIterator[tuple[ServiceSettings, httpx.AsyncClient]]:
    settings_cls, create_app = SERVICES[request.param]
    settings = settings_cls(database_url=infra.database_url, amqp_url=infra.amqp_url)
    async with in_process(create_app(settings)) as client:
        yield settings, client


async def test_service_starts_migrates_and_is_ready(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    settings, client = service
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "service": settings.service_name,
        "checks": {"database": "up", "migrations": "up", "broker": "up"},
    }
    health = await client.get("/healthz")
    assert health.json()["service"] == settings.service_name


async def test_service_exposes_prometheus_metrics(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    settings, client = service
    await client.get("/healthz")
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        f'modyard_http_requests_total{{method="GET",route="/healthz",service="{settings.service_name}",status="200"}}'
        in metrics.text
    )
    assert "modyard_dependency_up" in metrics.text


async def test_service_publishes_a_versioned_openapi_document(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    _, client = service
    document = (await client.get("/v1/openapi.json")).json()
    assert "/v1/diagnostics/pings" in document["paths"]


async def test_request_without_token_is_a_401_problem(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    _, client = service
    response = await client.post("/v1/diagnostics/pings")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "modyard token" in response.json()["detail"]


async def test_forged_or_garbage_tokens_are_401(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    _, client = service
    for value in (
        "Bearer not-a-jwt",
        "Basic dXNlcjpwYXNz",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ):
        response = await client.post("/v1/diagnostics/pings", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.json()["type"].endswith("/unauthorized")


async def test_user_role_may_not_send_diagnostic_pings(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    settings, client = service
    response = await client.post("/v1/diagnostics/pings", headers=auth_headers(settings, Role.user))
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]


async def test_malformed_path_parameter_is_a_422_problem(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    settings, client = service
    response = await client.get(
        "/v1/diagnostics/pings/not-a-ping-id", headers=auth_headers(settings)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/path/ping_id"


async def test_operator_ping_is_received_by_the_service_itself(
    service: tuple[ServiceSettings, httpx.AsyncClient],
) -> None:
    settings, client = service
    headers = auth_headers(settings, Role.service)
    sent = await client.post("/v1/diagnostics/pings", headers=headers)
    assert sent.status_code == 202
    ping_id = sent.json()["ping_id"]
    for _ in range(200):
        receipts = (await client.get(f"/v1/diagnostics/pings/{ping_id}", headers=headers)).json()[
            "receipts"
        ]
        if receipts:
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert [receipt["sent_by"] for receipt in receipts] == [settings.service_name]
