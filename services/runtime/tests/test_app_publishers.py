"""Publishing apps across workspaces, live: registry and installer processes, the runtime in
process. Publishing needs the ``publisher`` role in the workspace, and another workspace's
installations follow new versions only of publishers its operator allowed (hole 8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from runtime_env import external_request, registry_and_installer

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

PUB, USE = "pub-a", "use-b"
BOB = "bob@pub-a.example"


class Env:
    def __init__(
        self, client: httpx.AsyncClient, settings: RuntimeSettings, registry: str, installer: str
    ) -> None:
        self.client = client
        self.settings = settings
        self.registry = registry
        self.installer = installer
        self.operator = auth_headers(settings, Role.operator)

    def user(self, subject: str, workspace: str) -> dict[str, str]:
        return auth_headers(self.settings, Role.user, workspaces=(workspace,), subject=subject)

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await external_request(self.operator, method, url, **kwargs)

    async def publish(self, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(
            f"/v1/workspaces/{PUB}/publish", json={"app_name": "tool-a"}, headers=headers
        )

    async def versions(self) -> list[str]:
        response = await self.external("GET", f"{self.registry}/v1/modules/tool-a/index")
        if response.status_code == 404:
            return []
        return sorted(item["version"] for item in response.json()["versions"])

    async def installed(self, ws: str, slug: str) -> str:
        response = await self.external(
            "GET", f"{self.installer}/v1/workspaces/{ws}/installations/{slug}"
        )
        assert response.status_code == 200, response.text
        return str(response.json()["version"])


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "publishers") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            db_schema="runtime_publishers",
            installer_url=installer.url,
            registry_url=registry.url,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            env = Env(client, settings, registry.url, installer.url)
            for ws in (PUB, USE):
                created = await env.external(
                    "POST", f"{installer.url}/v1/workspaces", json={"slug": ws, "name": ws}
                )
                assert created.status_code == 201, created.text
            yield env


async def set_role(env: Env, role: str) -> None:
    response = await env.external(
        "PUT", f"{env.installer}/v1/workspaces/{PUB}/members/{BOB}", json={"role": role}
    )
    assert response.status_code == 200, response.text
    assert {"subject": BOB, "role": role} in [
        {"subject": m["subject"], "role": m["role"]} for m in response.json()["members"]
    ]


async def test_publishing_needs_the_publisher_role_and_followers_need_an_allowance(
    env: Env,
) -> None:
    bob = env.user(BOB, PUB)
    saved = await env.client.put(
        f"/v1/workspaces/{PUB}/automations/hello",
        json={"output": "hi", "do": []},
        headers=bob,
    )
    assert saved.status_code in (200, 201), saved.text

    # A plain member may not publish: 403 naming the role; nothing reaches the registry.
    await set_role(env, "member")
    refused = await env.publish(bob)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/publisher-role-required")
    assert "'publisher' role" in refused.json()["detail"]
    assert await env.versions() == []
    apps = await env.client.get("/v1/apps", headers=env.operator)
    assert apps.json()["items"] == []
    # Nor withdraw it.
    withdrawn = await env.client.delete(f"/v1/workspaces/{PUB}/publish", headers=bob)
    assert withdrawn.status_code == 403

    # With the role, the member publishes.
    await set_role(env, "publisher")
    first = await env.publish(bob)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == "1.0.0"
    for ws in (PUB, USE):
        installed = await env.external(
            "POST",
            f"{env.installer}/v1/workspaces/{ws}/installations",
            json={"module": "tool-a", "slug": "tool"},
        )
        assert installed.status_code == 201, installed.text

    # A new version: the publisher's own workspace follows, the other does not (not allowed).
    second = await env.publish(bob)
    assert second.json()["version"] == "1.1.0"

    async def own_followed() -> bool:
        return await env.installed(PUB, "tool") == "1.1.0"

    await eventually(own_followed)
    # The installer moves every follower of a version in one transaction: this is final.
    assert await env.installed(USE, "tool") == "1.0.0"
    # Published again from a workspace that installed it, the app lists itself among its
    # imports: an app cannot contain itself, so no instance nests inside it (one level deeper
    # with each version, and a read racing the upgrade that made one was a 500).
    listed = await env.external("GET", f"{env.installer}/v1/workspaces/{PUB}/installations")
    assert [item["slug"] for item in listed.json()["items"]] == ["tool"]

    # Only an operator allows a publisher.
    body = {"publisher": PUB}
    url = f"{env.installer}/v1/workspaces/{USE}/allowed-publishers"
    by_user = await env.external("POST", url, json=body, headers=env.user(BOB, USE))
    assert by_user.status_code == 403
    assert (await env.external("GET", url)).json()["items"] == []
    allowed = await env.external("POST", url, json=body)
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["module"] == "*"
    assert (await env.external("POST", url, json=body)).status_code == 200

    third = await env.publish(bob)
    assert third.json()["version"] == "1.2.0"

    async def other_followed() -> bool:
        return await env.installed(USE, "tool") == "1.2.0"

    await eventually(other_followed)
    assert await env.installed(PUB, "tool") == "1.2.0"
