"""An AppCell cell's ``license`` at publish (real registry: PostgreSQL, RabbitMQ, in process):
stored as one canonical SPDX expression, and a license that is not one is a 422 naming
``AppCell.json`` and the pointer (the array item for a choice) that stores nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.modules.examples import example_files
from modyard.registry.app import create_app
from modyard.registry.models import ModuleVersion
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

CELL = "acmeregistrarcell"


class Registry:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RegistrySettings) -> None:
        self.client = client
        self.app = app
        self.operator = auth_headers(settings, Role.operator)
        self.user = auth_headers(settings, Role.user)

    async def publish(self, license: Any, version: str) -> httpx.Response:
        files = dict(example_files("appcell-renamed-registrar"))
        document = json.loads(files["AppCell.json"])
        document.update(license=license, version=version)
        files["AppCell.json"] = json.dumps(document).encode()
        return await self.client.post(
            "/v1/modules",
            files={"archive": ("module.zip", make_zip(files), "application/zip")},
            headers=self.operator,
        )

    async def versions(self) -> int:
        async with self.app.state.database.transaction() as session:
            count = await session.scalar(select(func.count()).select_from(ModuleVersion))
            return int(count or 0)


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[Registry]:
    settings = RegistrySettings(database_url=infra.database_url, amqp_url=infra.amqp_url)
    app = create_app(settings)
    async with in_process(app) as client:
        yield Registry(client, app, settings)


async def test_a_cells_license_is_stored_as_one_canonical_spdx_expression(
    registry: Registry,
) -> None:
    response = await registry.publish(["mit", "GPL-2.0+ and (isc or 0bsd)"], "7.1.0")

    assert response.status_code == 201, response.text
    expected = "MIT OR (GPL-2.0-or-later AND (ISC OR 0BSD))"
    assert response.json()["manifest"]["cell"]["license"] == expected
    stored = await registry.client.get(f"/v1/modules/{CELL}/versions/7.1.0", headers=registry.user)
    assert stored.json()["manifest"]["cell"]["license"] == expected


@pytest.mark.parametrize(
    ("license", "pointer", "says"),
    [
        (["MIT", "Apache 2.0"], "/license/1", "did you mean 'Apache-2.0'?"),
        ("MIT or Acme", "/license", "'Acme' in 'MIT or Acme' is not on the SPDX license list"),
        ("()", "/license", "'()' is not a license expression"),
        ("MIT)", "/license", "a ')' closes nothing"),
    ],
)
async def test_a_license_that_is_no_spdx_expression_is_a_422_at_its_pointer_storing_nothing(
    registry: Registry, license: Any, pointer: str, says: str
) -> None:
    before = await registry.versions()

    response = await registry.publish(license, "7.2.0")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    (error,) = response.json()["errors"]
    assert (error["file"], error["pointer"]) == ("AppCell.json", pointer)
    assert says in error["detail"]
    assert await registry.versions() == before
    missing = await registry.client.get(f"/v1/modules/{CELL}/versions/7.2.0", headers=registry.user)
    assert missing.status_code == 404
