"""Appmixer modules shaped like public ones (issue 19, cases 1-8) publish through the real registry
(PostgreSQL, RabbitMQ, in process), and each one's defective twin is a 422 problem that names the
file and JSON pointer and stores nothing.

The fixtures are the adapter tests' look-alikes, ``libs/modules/tests/fixtures/appmixer/``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.modules.formats.appmixer import APPMIXER_ENGINE_VERSION
from modyard.registry.app import create_app
from modyard.registry.models import Module, ModuleVersion
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

FIXTURES = Path(__file__).parents[3] / "libs" / "modules" / "tests" / "fixtures" / "appmixer"


def fixture_files(case: str) -> dict[str, bytes]:
    root = FIXTURES / case
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def edited(files: dict[str, bytes], path: str, **changes: Any) -> dict[str, bytes]:
    document = json.loads(files[path])
    document.update(changes)
    return {**files, path: json.dumps(document).encode()}


class Registry:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RegistrySettings) -> None:
        self.client = client
        self.app = app
        self.operator = auth_headers(settings, Role.operator)
        self.user = auth_headers(settings, Role.user)

    async def publish(self, files: dict[str, bytes]) -> httpx.Response:
        return await self.client.post(
            "/v1/modules",
            files={"archive": ("module.zip", make_zip(files), "application/zip")},
            headers=self.operator,
        )

    async def stored(self) -> tuple[int, int]:
        async with self.app.state.database.transaction() as session:
            modules = await session.scalar(select(func.count()).select_from(Module))
            versions = await session.scalar(select(func.count()).select_from(ModuleVersion))
            return int(modules or 0), int(versions or 0)


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[Registry]:
    settings = RegistrySettings(database_url=infra.database_url, amqp_url=infra.amqp_url)
    app = create_app(settings)
    async with in_process(app) as client:
        yield Registry(client, app, settings)


@pytest.mark.parametrize(
    ("case", "name", "version", "components"),
    [
        (
            "case1-three-segments",
            "globex.suite.mail",
            "1.3.0",
            ["globex.suite.mail.NewMail", "globex.suite.mail.SendMail"],
        ),
        ("case2-bundle-rooted", "globex.drive.files", "0.4.1", ["globex.drive.files.UploadFile"]),
        ("case3-changelog-list", "hooli.notes", "2.0.0", ["hooli.notes.notes.ListNotes"]),
        (
            "case4-no-inports",
            "umbrella.flowtools",
            "1.0.0",
            [
                f"umbrella.flowtools.controls.{c}"
                for c in ("Catch", "ListTimezones", "OnBoot", "Pulse", "Relay")
            ],
        ),
        (
            "case5-module-auth",
            "initech.crm",
            "3.1.0",
            ["initech.crm.deals.GetDeal", "initech.crm.leads.GetLead"],
        ),
        ("case6-options", "vandelay.imports", "1.0.0", ["vandelay.imports.orders.GetOrder"]),
        ("case7-engine", "soylent.kitchen", "1.0.0", ["soylent.kitchen.recipes.GetRecipe"]),
        (
            "case8-code-files",
            "massive.dynamic",
            "1.1.0",
            ["massive.dynamic.labs.RunExperiment"],
        ),
    ],
)
async def test_each_look_alike_publishes_and_reads_back(
    registry: Registry, case: str, name: str, version: str, components: list[str]
) -> None:
    response = await registry.publish(fixture_files(case))

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["version"]) == (name, version)
    assert [c["name"] for c in body["manifest"]["components"]] == components
    stored = await registry.client.get(
        f"/v1/modules/{name}/versions/{version}", headers=registry.user
    )
    assert stored.status_code == 200
    assert stored.json()["manifest"] == body["manifest"]


async def test_two_modules_of_one_service_are_two_modules(registry: Registry) -> None:
    mail = edited(
        fixture_files("case1-three-segments"), "globex/suite/mail/bundle.json", version="1.4.0"
    )
    calendar = {
        path.replace("/mail/", "/calendar/"): data.replace(b"suite.mail", b"suite.calendar")
        .replace(b"suite:mail", b"suite:calendar")
        .replace(b'"1.4.0"', b'"1.3.1"')
        for path, data in mail.items()
    }

    assert (await registry.publish(calendar)).status_code == 201
    assert (await registry.publish(mail)).status_code == 201

    async def versions(name: str) -> list[str]:
        index = await registry.client.get(f"/v1/modules/{name}/index", headers=registry.user)
        return [v["version"] for v in index.json()["versions"]]

    assert await versions("globex.suite.calendar") == ["1.3.1"]
    assert "1.4.0" in await versions("globex.suite.mail")
    assert "1.3.1" not in await versions("globex.suite.mail")


async def test_engine_range_is_not_a_platform_requirement_in_the_index(
    registry: Registry,
) -> None:
    files = edited(fixture_files("case7-engine"), "bundle.json", version="1.0.1")
    response = await registry.publish(files)
    assert response.status_code == 201, response.text
    assert response.json()["manifest"]["requires"]["extra"] == {
        "appmixer_engine": ">=6.0",
        "appmixer_engine_provided": APPMIXER_ENGINE_VERSION,
    }

    index = (
        await registry.client.get("/v1/modules/soylent.kitchen/index", headers=registry.user)
    ).json()
    assert {v["version"]: v["platform"] for v in index["versions"]}["1.0.1"] is None


def _twins() -> list[tuple[str, dict[str, bytes], str, str]]:
    # The registry strips an archive's single top-level folder, and names files without it.
    mail = "globex/suite/mail"
    crm = "initech/crm"
    case2 = fixture_files("case2-bundle-rooted")
    return [
        (
            "case1",
            edited(
                fixture_files("case1-three-segments"),
                f"{mail}/SendMail/component.json",
                name="globex.suite.calendar.SendMail",
            ),
            "suite/mail/SendMail/component.json",
            "/name",
        ),
        (
            "case2",
            {p.replace("UploadFile/", "extra/UploadFile/"): d for p, d in case2.items()},
            "extra/UploadFile/component.json",
            "/name",
        ),
        (
            "case3",
            edited(fixture_files("case3-changelog-list"), "bundle.json", changelog=["ok", 3]),
            "bundle.json",
            "/changelog/1",
        ),
        (
            "case4",
            edited(fixture_files("case4-no-inports"), "controls/OnBoot/component.json", inPorts={}),
            "controls/OnBoot/component.json",
            "/inPorts",
        ),
        (
            "case5",
            edited(
                fixture_files("case5-module-auth"),
                f"{crm}/leads/GetLead/component.json",
                auth={"scope": []},
            ),
            "crm/leads/GetLead/component.json",
            "/auth/service",
        ),
        (
            "case6",
            {
                **fixture_files("case6-options"),
                "orders/GetOrder/component.json": fixture_files("case6-options")[
                    "orders/GetOrder/component.json"
                ].replace(b"lines[0].sku", b"lines[x].sku"),
            },
            "orders/GetOrder/component.json",
            "/outPorts/0/options/2/value",
        ),
        (
            "case7",
            edited(fixture_files("case7-engine"), "bundle.json", engine=">=7"),
            "bundle.json",
            "/engine",
        ),
        (
            "case8",
            {**fixture_files("case8-code-files"), "labs/package.json": b"{"},
            "labs/package.json",
            "",  # the whole document (RFC 6901: "" is the document, "/" would be key "")
        ),
    ]


@pytest.mark.parametrize(("case", "files", "file", "pointer"), _twins(), ids=lambda v: str(v)[:6])
async def test_each_defective_twin_is_a_problem_naming_file_and_pointer(
    registry: Registry, case: str, files: dict[str, bytes], file: str, pointer: str
) -> None:
    before = await registry.stored()

    response = await registry.publish(files)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/invalid-manifest")
    assert [(e["file"], e["pointer"]) for e in problem["errors"]] == [(file, pointer)]
    assert problem["errors"][0]["detail"]
    assert await registry.stored() == before
