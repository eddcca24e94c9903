"""The publishing route's body before authentication (issue 17, hole 9), on a registry process
sent 50 MB uploads over a socket: nobody's upload is answered 401 before it is read, and a
publisher's upload past the route's cap is 413 from its declared length (or once the counted
stream passes the cap, sent chunked), with nothing stored."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.large_bodies import post_large_body
from modyard.testing.services import ServiceProcess, auth_headers, service_process

pytestmark = pytest.mark.infra

HOST = "127.0.0.1"
FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[ServiceProcess]:
    schema = f"registry_limits_{uuid.uuid4().hex[:6]}"
    async with service_process(
        "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": schema}
    ) as process:
        yield process


async def _modules(registry: ServiceProcess, operator: dict[str, str]) -> int:
    async with httpx.AsyncClient(base_url=registry.url, headers=operator) as client:
        listed = await client.get("/v1/modules")
        assert listed.status_code == 200, listed.text
        return len(listed.json()["items"])


async def test_an_upload_from_nobody_is_answered_401_before_it_is_read(
    registry: ServiceProcess,
) -> None:
    for chunked in (False, True):
        answer = await post_large_body(
            HOST,
            registry.port,
            "/v1/modules",
            size=FIFTY_MB,
            chunked=chunked,
            content_type="application/zip",
        )
        assert answer.status == 401, answer.body[:300]
        assert answer.sent < FIFTY_MB


async def test_a_publishers_upload_past_the_cap_is_413_and_stores_nothing(
    registry: ServiceProcess, infra_settings: CommonSettings
) -> None:
    operator = auth_headers(infra_settings, Role.operator)
    before = await _modules(registry, operator)
    for chunked in (False, True):
        answer = await post_large_body(
            HOST,
            registry.port,
            "/v1/modules",
            size=FIFTY_MB,
            chunked=chunked,
            headers=operator,
            content_type="application/zip",
        )
        assert answer.status == 413, answer.body[:300]
        assert answer.json()["type"].endswith("/archive-too-large")
        assert answer.sent < FIFTY_MB
    assert await _modules(registry, operator) == before
