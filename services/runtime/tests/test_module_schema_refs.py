"""Issue 17, hole 4 (module authors' schemas), live: a component's ``properties_schema`` with a
``$ref`` outside the document is refused when a flow using it starts, and nothing is fetched.

Registry and installer processes, the runtime in process, the real broker, two workspaces. The
module ``refs-mod`` refers to a silent server on 127.0.0.1 (it accepts and never answers: before the
fix jsonschema's ``urllib`` fetch would block the event loop there) and to ``file:///etc/passwd``;
workspace B's flow uses the clean module ``plain-mod`` and starts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from runtime_env import module_archive, registry_and_installer

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

A, B = "schema-a", "schema-b"
#: The subject of ``auth_headers``' operator token: the owner of the flows it creates.
OPERATOR = "test"


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers; counts what connected."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)  # held open, unanswered

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def module_zip(name: str, properties_schema: dict[str, Any]) -> bytes:
    document = {
        "name": name,
        "version": "1.0.0",
        "kind": "connector",
        "components": [
            {
                "name": "Echo",
                "role": "action",
                "executor": {"type": "amqp"},
                "properties_schema": properties_schema,
            }
        ],
    }
    return module_archive(document)


class Env:
    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: RuntimeSettings,
        installer: str,
        silent: SilentServer,
        silent_url: str,
    ) -> None:
        self.client = client
        self.installer = installer
        self.silent = silent
        self.silent_url = silent_url
        self.operator = auth_headers(settings, Role.operator)

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.operator)
        async with httpx.AsyncClient(timeout=30) as client:
            return await client.request(method, url, **kwargs)

    async def flow(self, ws: str, component: str, properties: dict[str, Any]) -> str:
        created = await self.client.post(
            f"/v1/workspaces/{ws}/flows",
            json={
                "name": f"flow-{uuid.uuid4().hex[:6]}",
                "definition": {
                    "nodes": {"n": {"component": component, "properties": properties}},
                    "connections": [],
                },
            },
            headers=self.operator,
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    async def validation(self, ws: str, flow_id: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/workspaces/{ws}/flows/{flow_id}/validation", headers=self.operator
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def status(self, ws: str, flow_id: str) -> str:
        response = await self.client.get(
            f"/v1/workspaces/{ws}/flows/{flow_id}", headers=self.operator
        )
        return str(response.json()["status"])


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    silent = SilentServer()
    port = await silent.start()
    silent_url = f"http://127.0.0.1:{port}/x"
    try:
        async with registry_and_installer(infra, "schema_refs") as (registry, installer):
            settings = RuntimeSettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                db_schema="runtime_schema_refs",
                installer_url=installer.url,
            )
            async with in_process(create_app(settings)) as client:
                env = Env(client, settings, installer.url, silent, silent_url)
                modules = {
                    "refs-mod": {
                        "type": "object",
                        "properties": {
                            "u": {"$ref": silent_url},
                            "f": {"$ref": "file:///etc/passwd"},
                        },
                    },
                    "plain-mod": {
                        "type": "object",
                        "properties": {"n": {"$ref": "#/$defs/count"}},
                        "$defs": {"count": {"type": "integer"}},
                    },
                }
                for name, schema in modules.items():
                    published = await env.external(
                        "POST",
                        f"{registry.url}/v1/modules",
                        content=module_zip(name, schema),
                        headers={**env.operator, "content-type": "application/zip"},
                    )
                    assert published.status_code == 201, published.text
                    rule = await env.external(
                        "POST",
                        f"{installer.url}/v1/acl/components",
                        json={"user": OPERATOR, "resource": f"{name}.*", "action": "use"},
                    )
                    assert rule.status_code == 201, rule.text
                for ws, module in ((A, "refs-mod"), (B, "plain-mod")):
                    created = await env.external(
                        "POST", f"{installer.url}/v1/workspaces", json={"slug": ws, "name": ws}
                    )
                    assert created.status_code == 201, created.text
                    installed = await env.external(
                        "POST",
                        f"{installer.url}/v1/workspaces/{ws}/installations",
                        json={"module": module, "slug": module.removesuffix("-mod")},
                    )
                    assert installed.status_code == 201, installed.text
                yield env
    finally:
        await silent.stop()


async def test_a_remote_or_file_ref_in_a_modules_properties_schema_is_refused_at_start(
    env: Env,
) -> None:
    refusing = await env.flow(A, "refs.Echo", {"u": "x", "f": "y"})
    clean = await env.flow(B, "plain.Echo", {"n": 3})

    async def a_knows_its_installation() -> bool:
        # The runtime learns installations from the installer's events.
        errors = (await env.validation(A, refusing))["errors"]
        return bool(errors) and all("no installed component" not in e["detail"] for e in errors)

    await eventually(a_knows_its_installation)

    started = await env.client.post(
        f"/v1/workspaces/{A}/flows/{refusing}/start", headers=env.operator
    )
    assert started.status_code == 422, started.text
    problem = started.json()
    assert problem["type"].endswith("/invalid-flow")
    errors = problem["errors"]
    assert {error["pointer"] for error in errors} == {"/definition/nodes/n/component"}
    details = " ".join(error["detail"] for error in errors)
    assert f"/properties/u/$ref: {env.silent_url!r} is not within this schema" in details
    assert "/properties/f/$ref: 'file:///etc/passwd' is not within this schema" in details
    assert "the module's publisher must fix it" in details
    assert env.silent.connections == 0  # never fetched
    assert await env.status(A, refusing) == "stopped"  # nothing changed

    # The other workspace's flow, whose module keeps its $ref inside the document, starts.
    async def b_knows_its_installation() -> bool:
        return bool((await env.validation(B, clean))["valid"])

    await eventually(b_knows_its_installation)
    bad_value = await env.flow(B, "plain.Echo", {"n": "three"})
    refused = await env.client.post(
        f"/v1/workspaces/{B}/flows/{bad_value}/start", headers=env.operator
    )
    assert refused.status_code == 422, refused.text
    assert [error["pointer"] for error in refused.json()["errors"]] == [
        "/definition/nodes/n/properties/n"
    ]
    started_b = await env.client.post(
        f"/v1/workspaces/{B}/flows/{clean}/start", headers=env.operator
    )
    assert started_b.status_code == 200, started_b.text
    assert await env.status(B, clean) == "running"
    assert env.silent.connections == 0
    stopped = await env.client.post(f"/v1/workspaces/{B}/flows/{clean}/stop", headers=env.operator)
    assert stopped.status_code == 200, stopped.text
