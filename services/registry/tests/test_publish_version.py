"""The version of a module whose files carry none (Slingr packages, Prisme.ai apps, AppCell cells)
comes from the publish request: the ``version`` query parameter or form field (issue 19)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modyard.common.auth import Role
from modyard.modules.examples import example_files
from modyard.registry.app import create_app
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

FIXTURES = Path(__file__).parents[3] / "libs" / "modules" / "tests" / "fixtures"


def fixture_zip(name: str) -> bytes:
    root = FIXTURES / name
    return make_zip(
        {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    )


class Registry:
    def __init__(self, client: httpx.AsyncClient, settings: RegistrySettings) -> None:
        self.client = client
        self.operator = auth_headers(settings, Role.operator)

    async def publish(
        self, data: bytes, *, query: str | None = None, form: str | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/modules",
            params={"version": query} if query is not None else None,
            data={"version": form} if form is not None else None,
            files={"archive": ("module.zip", data, "application/zip")},
            headers=self.operator,
        )

    async def versions(self, name: str) -> list[str]:
        found = await self.client.get(f"/v1/modules/{name}", headers=self.operator)
        if found.status_code == 404:
            return []
        return [item["version"] for item in found.json()["versions"]]


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[Registry]:
    settings = RegistrySettings(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        db_schema="registry_publish_version",
    )
    async with in_process(create_app(settings)) as client:
        yield Registry(client, settings)


async def test_a_slingr_package_without_a_version_is_refused_saying_how_to_pass_it(
    registry: Registry,
) -> None:
    refused = await registry.publish(fixture_zip("slingr/chatter"))

    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/version-required")
    assert "Slingr packages carry no version" in problem["detail"]
    assert "modyard publish --version v1.2.0" in problem["detail"]
    assert "query parameter of POST /v1/modules" in problem["detail"]
    assert [(e["file"], e["pointer"]) for e in problem["errors"]] == [("package.json", "/version")]
    assert await registry.versions("chatter") == []


async def test_the_version_comes_from_the_query_or_the_form_field(registry: Registry) -> None:
    data = fixture_zip("slingr/chatter")

    by_query = await registry.publish(data, query="v1.2.0")
    by_form = await registry.publish(data, form="1.3.0")

    assert by_query.status_code == 201, by_query.text
    assert by_query.json()["manifest"]["version"] == "1.2.0"
    assert by_query.headers["location"] == "/v1/modules/chatter/versions/1.2.0"
    assert by_form.status_code == 201, by_form.text
    assert by_form.json()["version"] == "1.3.0"
    # The same archive under two versions: two releases (git tags) of unchanged files.
    assert by_form.json()["digest"] == by_query.json()["digest"]
    again = await registry.publish(data, query="1.2.0", form="v1.2.0")
    assert (again.status_code, again.json()["created"]) == (200, False)
    assert sorted(await registry.versions("chatter")) == ["1.2.0", "1.3.0"]


async def test_a_prismeai_app_and_an_appcell_cell_take_the_requests_version(
    registry: Registry,
) -> None:
    app = await registry.publish(fixture_zip("prismeai/helpdesk"), query="v0.4.0")
    cell_files = dict(example_files("appcell-newresellerclub"))
    document = json.loads(cell_files["AppCell.json"])
    del document["version"]
    cell_files["AppCell.json"] = json.dumps(document).encode()
    cell = await registry.publish(make_zip(cell_files), form="3.0.0")

    assert app.status_code == 201, app.text
    assert (app.json()["name"], app.json()["version"]) == ("helpdesk", "0.4.0")
    assert cell.status_code == 201, cell.text
    assert (cell.json()["name"], cell.json()["version"]) == ("newresellerclubcell", "3.0.0")


async def test_bad_or_disagreeing_versions_are_refused_and_nothing_is_stored(
    registry: Registry,
) -> None:
    data = fixture_zip("prismeai/helpdesk")
    invalid = await registry.publish(data, query="v1.x")
    twice = await registry.publish(data, query="5.0.0", form="5.0.1")
    native = make_zip(dict(example_files("native-weather")))
    disagreeing = await registry.publish(native, query="9.9.9")

    assert invalid.status_code == 422
    assert invalid.json()["type"].endswith("/invalid-version")
    assert invalid.json()["errors"][0]["pointer"] == "/version"
    assert twice.status_code == 422
    assert "pass the version once" in twice.json()["detail"]
    assert disagreeing.status_code == 422
    assert [(e["file"], e["pointer"]) for e in disagreeing.json()["errors"]] == [
        ("modyard.yaml", "/version")
    ]
    assert "but the publish request says 9.9.9" in disagreeing.json()["detail"]
    assert "5.0.0" not in await registry.versions("helpdesk")
    assert await registry.versions("acme-weather") == []
