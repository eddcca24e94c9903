"""An Appmixer module whose bundle.json names the Appmixer engine it needs (``"engine": ">=6.0"``)
installs: that range is about the Appmixer engine modyard provides, not modyard's own platform
version, which it used to be checked against ("requires platform >=6.0.0", issue 19 case 7).

Real registry process, real PostgreSQL and RabbitMQ; the module is the adapter tests' look-alike.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modyard.common.auth import Role
from modyard.installer.app import create_app
from modyard.installer.settings import InstallerSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process, service_process

pytestmark = pytest.mark.infra

FIXTURE = (
    Path(__file__).parents[3]
    / "libs"
    / "modules"
    / "tests"
    / "fixtures"
    / "appmixer"
    / "case7-engine"
)


def fixture_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(FIXTURE.rglob("*")):
            if path.is_file():
                archive.writestr(path.relative_to(FIXTURE).as_posix(), path.read_bytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
async def installer(
    infra: IsolatedInfra,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_for_appmixer_engine"}
    async with service_process("registry", registry_env) as registry:
        settings = InstallerSettings(
            database_url=infra.database_url, amqp_url=infra.amqp_url, registry_url=registry.url
        )
        operator = auth_headers(settings, Role.operator)
        async with httpx.AsyncClient(base_url=registry.url, headers=operator) as client:
            published = await client.post(
                "/v1/modules", content=fixture_zip(), headers={"content-type": "application/zip"}
            )
            assert published.status_code == 201, published.text
        async with in_process(create_app(settings)) as client:
            yield client, operator


async def test_module_needing_appmixer_engine_6_installs(
    installer: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, operator = installer
    created = await client.post(
        "/v1/workspaces",
        json={"slug": "kitchen-ws", "name": "Kitchen", "members": []},
        headers=operator,
    )
    assert created.status_code == 201, created.text

    response = await client.post(
        "/v1/workspaces/kitchen-ws/installations",
        json={"module": "soylent.kitchen", "slug": "kitchen"},
        headers=operator,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["module"], body["version"], body["slug"]) == (
        "soylent.kitchen",
        "1.0.0",
        "kitchen",
    )
