"""Issue 17, hole 5 (module authors' patterns), live: a module's configuration schema is its
publisher's text, and matching it must not hang the installer whoever configures an installation.

A real registry process and PostgreSQL/RabbitMQ; the installer in process; two workspaces. The
module's schema has ``^(a+)+$`` (and the same shape in ``patternProperties``): with Python's ``re``
forty ``a`` and a ``!`` take about 2**40 steps, so before the fix these tests hang (they never
flake on timing); on RE2 they answer at once with the right validation result.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml

from modyard.common.auth import Role
from modyard.installer.app import create_app
from modyard.installer.settings import InstallerSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import (
    ServiceProcess,
    auth_headers,
    in_process,
    service_process,
)

pytestmark = pytest.mark.infra

A, B = "redos-a", "redos-b"
EVIL_CODE = "a" * 40 + "!"
EVIL_TAG = "b" * 40 + "!"

REDOS_CONFIG = {
    "schema": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^(a+)+$"},
            "tags": {
                "type": "object",
                "patternProperties": {"^(b+)+$": {"type": "integer"}},
                "additionalProperties": False,
            },
        },
    },
}


def module_zip(name: str, config: dict[str, Any]) -> bytes:
    document = {
        "name": name,
        "version": "1.0.0",
        "kind": "connector",
        "config": config,
        "components": [{"name": "Do", "role": "action", "executor": {"type": "http"}}],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.yaml", yaml.safe_dump(document))
    return buffer.getvalue()


class Env:
    def __init__(
        self, registry: ServiceProcess, client: httpx.AsyncClient, settings: InstallerSettings
    ) -> None:
        self.registry = registry
        self.client = client
        self.operator = auth_headers(settings, Role.operator)

    async def publish(self, data: bytes) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.registry.url, headers=self.operator) as client:
            return await client.post(
                "/v1/modules", content=data, headers={"content-type": "application/zip"}
            )

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.operator, **kwargs)

    async def installations(self, ws: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"/v1/workspaces/{ws}/installations")
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_for_patterns"}
    async with service_process("registry", registry_env) as registry:
        settings = InstallerSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            registry_url=registry.url,
            db_schema="installer_patterns",
        )
        async with in_process(create_app(settings)) as client:
            environment = Env(registry, client, settings)
            published = await environment.publish(module_zip("redos-mod", REDOS_CONFIG))
            assert published.status_code == 201, published.text
            for ws in (A, B):
                created = await environment.call(
                    "POST", "/v1/workspaces", json={"slug": ws, "name": ws}
                )
                assert created.status_code == 201, created.text
            yield environment


def errors_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {error["pointer"]: error["detail"] for error in response.json()["errors"]}


async def test_a_redos_pattern_of_a_module_is_matched_at_once_in_either_workspace(env: Env) -> None:
    install = f"/v1/workspaces/{A}/installations"
    refused = await env.call(
        "POST", install, json={"module": "redos-mod", "slug": "r", "config": {"code": EVIL_CODE}}
    )
    assert errors_of(refused) == {"/body/config/code": "must be a string matching ^(a+)+$"}
    unknown = await env.call(
        "POST",
        install,
        json={"module": "redos-mod", "slug": "r", "config": {"tags": {EVIL_TAG: 1}}},
    )
    assert errors_of(unknown) == {
        f"/body/config/tags/{EVIL_TAG}": "is not a setting of this module; remove it"
    }
    assert await env.installations(A) == []  # nothing was installed

    # Workspace B installs it with a valid configuration; configuring it with the evil value is
    # refused as promptly and leaves the stored configuration as it was.
    valid = {"code": "a" * 10_000, "tags": {"bbb": 1}}
    created = await env.call(
        "POST",
        f"/v1/workspaces/{B}/installations",
        json={"module": "redos-mod", "slug": "r", "config": valid},
    )
    assert created.status_code == 201, created.text
    configure = f"/v1/workspaces/{B}/installations/r/config"
    patched = await env.call("PATCH", configure, json={"config": {"code": EVIL_CODE}})
    assert list(errors_of(patched)) == ["/body/config/code"]
    patched = await env.call("PATCH", configure, json={"config": {"tags": {EVIL_TAG: 2}}})
    assert list(errors_of(patched)) == [f"/body/config/tags/{EVIL_TAG}"]
    stored = await env.call("GET", f"/v1/workspaces/{B}/installations/r")
    assert stored.json()["config"] == valid

    # And workspace A, with a value that matches, installs it.
    matching = await env.call(
        "POST", install, json={"module": "redos-mod", "slug": "r", "config": {"code": "aaaa"}}
    )
    assert matching.status_code == 201, matching.text
    assert [item["slug"] for item in await env.installations(A)] == ["r"]


async def test_a_pattern_re2_cannot_compile_is_refused_when_the_module_is_published(
    env: Env,
) -> None:
    config = {
        "schema": {
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^(?!admin)[a-z]+$"}},
            "patternProperties": {"^(x)\\1$": {}},
        }
    }
    refused = await env.publish(module_zip("lookaround-mod", config))
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/unsupported-pattern")
    details = {error["pointer"]: error["detail"] for error in problem["errors"]}
    assert set(details) == {
        "/config/schema/properties/code/pattern",
        "/config/schema/patternProperties/^(x)\\1$",
    }
    assert all("RE2 cannot compile this pattern" in detail for detail in details.values())
    async with httpx.AsyncClient(base_url=env.registry.url, headers=env.operator) as client:
        assert (await client.get("/v1/modules/lookaround-mod")).status_code == 404  # not stored
    # The module's installations cannot exist, in either workspace.
    for ws in (A, B):
        install = await env.call(
            "POST", f"/v1/workspaces/{ws}/installations", json={"module": "lookaround-mod"}
        )
        assert install.status_code in (404, 422), install.text
