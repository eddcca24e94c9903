"""The installer against a real registry process, real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from modyard.common.auth import Role
from modyard.installer.app import create_app
from modyard.installer.context import SLOT
from modyard.installer.settings import InstallerSettings
from modyard.modules.examples import example_files
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import (
    ServiceProcess,
    auth_headers,
    in_process,
    service_process,
)

pytestmark = pytest.mark.infra

SECRET = "sk-live-very-secret-value-0042"


def native_module(
    name: str,
    version: str,
    *,
    dependencies: dict[str, str] | None = None,
    platform: str | None = None,
    config: dict[str, Any] | None = None,
    components: int = 1,
) -> bytes:
    document: dict[str, Any] = {
        "name": name,
        "version": version,
        "kind": "connector",
        "label": f"{name} {version}",
        "dependencies": [{"name": n, "range": r} for n, r in (dependencies or {}).items()],
        "components": [
            {
                "name": f"Do{index}",
                "role": "action",
                "description": f"Action {index}",
                "executor": {"type": "http"},
            }
            for index in range(components)
        ],
    }
    if platform:
        document["requires"] = {"platform": platform}
    if config:
        document["config"] = config
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.yaml", yaml.safe_dump(document))
    return buffer.getvalue()


CONFIGURABLE = {
    "schema": {
        "type": "object",
        "required": ["apiKey"],
        "properties": {
            "apiKey": {"type": "string", "writeOnly": True},
            "region": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
            "retries": {"type": "integer", "minimum": 0, "default": 3},
        },
        "additionalProperties": False,
    },
    "fields": [
        {"name": "apiKey", "type": "password", "secret": True, "required": True},
        {"name": "region", "type": "dropDown", "default": "eu"},
        {"name": "retries", "type": "text", "default": 3},
    ],
}


class Env:
    def __init__(
        self,
        registry: ServiceProcess,
        client: httpx.AsyncClient,
        app: Any,
        settings: InstallerSettings,
    ) -> None:
        self.registry = registry
        self.client = client
        self.app = app
        self.settings = settings
        self.operator = auth_headers(settings, Role.operator)
        self.service = auth_headers(settings, Role.service)
        self.responses: list[str] = []

    async def publish(self, data: bytes) -> None:
        async with httpx.AsyncClient(base_url=self.registry.url, headers=self.operator) as registry:
            response = await registry.post(
                "/v1/modules", content=data, headers={"content-type": "application/zip"}
            )
            assert response.status_code in (200, 201), response.text

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.operator)
        response = await self.client.request(method, path, **kwargs)
        self.responses.append(response.text)
        return response

    async def workspace(self, slug: str, members: list[str] | None = None) -> None:
        response = await self.call(
            "POST",
            "/v1/workspaces",
            json={"slug": slug, "name": slug.title(), "members": members or []},
        )
        assert response.status_code == 201, response.text

    async def install(self, ws: str, **body: Any) -> httpx.Response:
        return await self.call("POST", f"/v1/workspaces/{ws}/installations", json=body)

    async def outbox(self, kind: str) -> list[dict[str, Any]]:
        async with self.app.state.database.transaction() as session:
            rows = await session.execute(
                text("SELECT envelope FROM outbox WHERE envelope->>'type' = :t ORDER BY seq"),
                {"t": kind},
            )
            return [row[0]["data"] for row in rows]


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_for_installer"}
    async with service_process("registry", registry_env) as registry:
        settings = InstallerSettings(
            database_url=infra.database_url, amqp_url=infra.amqp_url, registry_url=registry.url
        )
        app = create_app(settings)
        async with in_process(app) as client:
            environment = Env(registry, client, app, settings)
            for data in (
                native_module("lib-b", "1.4.0"),
                native_module("lib-b", "1.5.0"),
                native_module("lib-b", "2.0.0"),
                native_module("app-a", "1.2.0", dependencies={"lib-b": "^1.4.0"}, components=2),
                native_module("app-c", "1.0.0", dependencies={"lib-b": "^2.0.0"}),
                native_module("deep-3", "1.0.0"),
                native_module("deep-2", "1.0.0", dependencies={"deep-3": "~1.0.0"}),
                native_module("deep-1", "1.0.0", dependencies={"deep-2": "v1.0.0"}),
                native_module("future", "1.0.0", platform="^9.0.0"),
                native_module("conf-mod", "1.0.0", config=CONFIGURABLE),
                native_module("up-mod", "1.0.0", components=3),
            ):
                await environment.publish(data)
            yield environment


async def test_install_resolves_the_graph_and_records_the_lock(env: Env) -> None:
    await env.workspace("acme")
    response = await env.install("acme", module="app-a", version="^1.0.0")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["module"], body["version"], body["slug"]) == ("app-a", "1.2.0", "app-a")
    assert body["also_installed"] == ["lib-b"]
    assert body["dependencies"] == ["lib-b"]
    assert body["lock"]["modules"]["lib-b"]["version"] == "1.5.0"
    dependency = (await env.call("GET", "/v1/workspaces/acme/installations/lib-b")).json()
    assert dependency["installed_as_dependency"] is True
    assert dependency["parent"] == "app-a"
    assert dependency["dependents"] == ["app-a"]
    created = [
        (e["slug"], e["version"])
        for e in await env.outbox("modyard.installer.installation.created")
        if e["workspace"] == "acme"
    ]
    assert created == [("app-a", "1.2.0"), ("lib-b", "1.5.0")]


async def test_transitive_chain_with_tilde_and_v_prefixed_ranges(env: Env) -> None:
    await env.workspace("deep")
    response = await env.install("deep", module="deep-1")
    assert response.status_code == 201, response.text
    assert sorted(response.json()["also_installed"]) == ["deep-2", "deep-3"]


async def test_conflicting_requirements_are_a_409_with_the_chain(env: Env) -> None:
    await env.workspace("clash")
    assert (await env.install("clash", module="app-a")).status_code == 201
    response = await env.install("clash", module="app-c")
    assert response.status_code == 409
    body = response.json()
    assert body["type"].endswith("/version-conflict")
    assert "lib-b" in body["detail"]
    assert any("app-c@1.0.0 needs lib-b@^2.0.0" in link for link in body["chain"])
    assert any("lib-b@1.5.0" in link for link in body["chain"])


async def test_platform_requirement_and_unknown_module_are_refused(env: Env) -> None:
    await env.workspace("refusals")
    future = await env.install("refusals", module="future")
    assert future.status_code == 409
    assert future.json()["type"].endswith("/platform-mismatch")
    unknown = await env.install("refusals", module="no-such-module")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["pointer"] == "/body/module"
    listed = (await env.call("GET", "/v1/workspaces/refusals/installations")).json()
    assert listed == {"items": []}


async def test_idempotency_key_replays_the_first_answer(env: Env) -> None:
    await env.workspace("retry")
    headers = {**env.operator, "Idempotency-Key": "install-lib-once"}
    first = await env.call(
        "POST", "/v1/workspaces/retry/installations", json={"module": "lib-b"}, headers=headers
    )
    again = await env.call(
        "POST", "/v1/workspaces/retry/installations", json={"module": "lib-b"}, headers=headers
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = await env.call(
        "POST",
        "/v1/workspaces/retry/installations",
        json={"module": "lib-b", "slug": "other"},
        headers=headers,
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("/idempotency-key-reused")


async def test_two_instances_keep_their_own_config_and_secrets_stay_hidden(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    await env.workspace("configs")
    first = await env.install(
        "configs", module="conf-mod", slug="conf-eu", config={"apiKey": SECRET}
    )
    second = await env.install(
        "configs", module="conf-mod", slug="conf-us", config={"apiKey": "other-key", "region": "us"}
    )
    assert (first.status_code, second.status_code) == (201, 201), first.text + second.text
    assert first.json()["config"] == {"apiKey": "********"}
    assert second.json()["config"] == {"apiKey": "********", "region": "us"}

    # The variables name the module (conf-mod), so they reach both of its installations.
    SLOT.of(env.app).environ = {"APP_CONFIG_CONF_MOD_REGION": "eu"}
    try:
        eu = (
            await env.call(
                "GET",
                "/v1/workspaces/configs/installations/conf-eu/effective-config",
                headers=env.service,
            )
        ).json()
        us = (
            await env.call(
                "GET",
                "/v1/workspaces/configs/installations/conf-us/effective-config",
                headers=env.service,
            )
        ).json()
    finally:
        SLOT.of(env.app).environ = {}
    assert eu["config"] == {"apiKey": SECRET, "region": "eu", "retries": 3}
    # The instance's own value beats the environment, which beats the module's default.
    assert us["config"] == {"apiKey": "other-key", "region": "us", "retries": 3}

    operator_read = await env.call(
        "GET", "/v1/workspaces/configs/installations/conf-eu/effective-config"
    )
    assert operator_read.status_code == 403

    patched = await env.call(
        "PATCH",
        "/v1/workspaces/configs/installations/conf-eu/config",
        json={"config": {"apiKey": "********", "region": "us"}},
    )
    assert patched.status_code == 200, patched.text
    after = (
        await env.call(
            "GET",
            "/v1/workspaces/configs/installations/conf-eu/effective-config",
            headers=env.service,
        )
    ).json()
    assert after["config"]["apiKey"] == SECRET
    assert after["config"]["region"] == "us"
    configured = await env.outbox("modyard.installer.installation.configured")
    assert [e["slug"] for e in configured if e["workspace"] == "configs"] == ["conf-eu"]

    # Only the runtime's effective-config answers carry the secret; no other response does.
    assert all(SECRET not in body for body in env.responses if '"storage_token"' not in body)
    assert SECRET not in caplog.text
    async with env.app.state.database.transaction() as session:
        stored = (
            await session.execute(
                text(
                    "SELECT config::text, coalesce(secrets, '') FROM installations WHERE slug = 'conf-eu'"
                )
            )
        ).one()
        outbox = (
            await session.execute(text("SELECT string_agg(envelope::text, '') FROM outbox"))
        ).scalar_one()
    assert SECRET not in stored[0]
    assert SECRET not in stored[1]
    assert SECRET not in outbox


async def test_invalid_config_lists_every_field(env: Env) -> None:
    await env.workspace("badconf")
    response = await env.install(
        "badconf", module="conf-mod", config={"region": "mars", "retries": -1, "extra": 1}
    )
    assert response.status_code == 422
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert {"/body/config/apiKey", "/body/config/region", "/body/config/retries"} <= pointers


async def test_unpinned_follow_compatible_versions_and_pinned_stay(env: Env) -> None:
    await env.workspace("follow")
    assert (await env.install("follow", module="up-mod", slug="up-free")).status_code == 201
    assert (
        await env.install("follow", module="up-mod", slug="up-pinned", pinned=True)
    ).status_code == 201
    await env.publish(native_module("up-mod", "1.1.0", components=3))

    async def free_moved() -> bool:
        body = (await env.call("GET", "/v1/workspaces/follow/installations/up-free")).json()
        return bool(body["version"] == "1.1.0")

    await eventually(free_moved, timeout=15)
    pinned = (await env.call("GET", "/v1/workspaces/follow/installations/up-pinned")).json()
    assert pinned["version"] == "1.0.0"

    await env.publish(native_module("up-mod", "2.0.0", components=2))
    await asyncio.sleep(1.0)
    assert (await env.call("GET", "/v1/workspaces/follow/installations/up-free")).json()[
        "version"
    ] == "1.1.0"

    refused = await env.call(
        "POST", "/v1/workspaces/follow/installations/up-free/upgrade", json={"version": "2.0.0"}
    )
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/breaking-upgrade")
    accepted = await env.call(
        "POST",
        "/v1/workspaces/follow/installations/up-free/upgrade",
        json={"version": "^2", "accept_breaking": True},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["version"] == "2.0.0"
    upgraded = [
        e
        for e in await env.outbox("modyard.installer.installation.upgraded")
        if e["slug"] == "up-free"
    ]
    assert [(e["previous_version"], e["version"], e["breaking"]) for e in upgraded] == [
        ("1.0.0", "1.1.0", False),
        ("1.1.0", "2.0.0", True),
    ]
    assert upgraded[-1]["reason"] == "module_major_upgrade"
    assert [c["name"] for c in upgraded[-1]["affected_components"]] == ["Do0", "Do1", "Do2"]
    assert upgraded[-1]["components"][0] == {
        "name": "Do0",
        "role": "action",
        "executor": "http",
        "executor_options": {},
        "private": False,
        "polling_interval_seconds": None,
        "properties_schema": None,
        "in_ports": [],
        "out_ports": [],
        "webhook": False,
    }


async def test_removal_respects_dependents_unless_forced(env: Env) -> None:
    await env.workspace("removal")
    assert (await env.install("removal", module="app-a")).status_code == 201
    blocked = await env.call("DELETE", "/v1/workspaces/removal/installations/lib-b")
    assert blocked.status_code == 409
    assert blocked.json()["dependents"] == ["app-a"]
    forced = await env.call(
        "DELETE", "/v1/workspaces/removal/installations/lib-b", params={"force": "true"}
    )
    assert forced.status_code == 204
    removed = [
        e
        for e in await env.outbox("modyard.installer.installation.removed")
        if e["workspace"] == "removal"
    ]
    assert [(e["slug"], e["forced"]) for e in removed] == [("lib-b", True)]
    again = await env.install("removal", module="lib-b", version="^1")
    assert again.status_code == 201
    assert (
        await env.call("DELETE", "/v1/workspaces/removal/installations/app-a")
    ).status_code == 204


async def test_components_are_visible_to_users_only_once_a_rule_allows(env: Env) -> None:
    await env.workspace("visible", members=["alice@example.com"])
    assert (await env.install("visible", module="app-a", slug="tools")).status_code == 201
    listing = "/v1/workspaces/visible/components"
    assert (await env.call("GET", listing, params={"as": "alice@example.com"})).json() == []
    operator_view = (await env.call("GET", listing)).json()
    assert {c["resource"] for c in operator_view} >= {"app-a.Do0", "app-a.Do1"}

    granted = await env.call("POST", "/v1/workspaces/visible/installations/tools/acl/grant-users")
    assert granted.status_code == 201
    assert granted.json()["resource"] == "app-a.*"
    alice = (await env.call("GET", listing, params={"as": "alice@example.com"})).json()
    assert [c["resource"] for c in alice if c["module"] == "app-a"] == ["app-a.Do0", "app-a.Do1"]

    rule = await env.call(
        "POST",
        "/v1/acl/components",
        json={"domain": "partner.io", "resource": "lib-b.*", "action": "use"},
    )
    assert rule.status_code == 201
    bob = (await env.call("GET", listing, params={"as": "bob@partner.io"})).json()
    # app-a is open to every user; lib-b only to the partner's domain.
    assert {c["module"] for c in bob} == {"app-a", "lib-b"}
    carol = (await env.call("GET", listing, params={"as": "carol@elsewhere.org"})).json()
    assert {c["module"] for c in carol} == {"app-a"}
    assert (await env.call("DELETE", f"/v1/acl/components/{rule.json()['id']}")).status_code == 204
    bob_after = (await env.call("GET", listing, params={"as": "bob@partner.io"})).json()
    assert {c["module"] for c in bob_after} == {"app-a"}
    assert (await env.call("GET", "/v1/acl-types")).json() == ["components"]
    bad = await env.call(
        "POST", "/v1/acl/components", json={"role": "user", "user": "x@y.z", "resource": "*"}
    )
    assert bad.status_code == 422


async def test_cell_storage_is_seeded_and_reachable_only_with_its_credential(env: Env) -> None:
    cell = example_files("appcell-newresellerclub")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in cell.items():
            archive.writestr(path, data)
    await env.publish(buffer.getvalue())
    await env.workspace("cells")
    # `require.ui` is the AppCell UI platform (a capability), not a module the registry must hold.
    installed = await env.install(
        "cells", module="newresellerclubcell", config={"userid": "1", "password": "pw"}
    )
    assert installed.status_code == 201, installed.text
    installation_id = installed.json()["id"]
    effective = (
        await env.call(
            "GET",
            "/v1/workspaces/cells/installations/newresellerclubcell/effective-config",
            headers=env.service,
        )
    ).json()
    token = effective["storage_token"]
    assert token.startswith("mys_")
    own = {"Authorization": f"Bearer {token}"}
    seeded = await env.call(
        "GET",
        f"/v1/installations/{installation_id}/storage/servers/server.apihawk.com",
        headers=own,
    )
    assert seeded.status_code == 200, seeded.text
    assert seeded.json()["value"]["hostname"]
    put = await env.call(
        "PUT",
        f"/v1/installations/{installation_id}/storage/vault/login",
        json={"user": "u"},
        params={"encrypt": "true"},
        headers=own,
    )
    assert put.json() == {
        **put.json(),
        "key": "vault/login",
        "value": {"user": "u"},
        "encrypted": True,
    }
    listed = (
        await env.call(
            "GET",
            f"/v1/installations/{installation_id}/storage",
            params={"prefix": "vault/"},
            headers=own,
        )
    ).json()
    assert [item["key"] for item in listed["items"]] == ["vault/login"]

    await env.workspace("other-cells")
    lib = (await env.install("other-cells", module="lib-b")).json()
    stranger = await env.call("GET", f"/v1/installations/{lib['id']}/storage", headers=own)
    assert stranger.status_code == 403
    assert (
        await env.call(
            "DELETE", f"/v1/installations/{installation_id}/storage/vault/login", headers=own
        )
    ).status_code == 204
    assert (
        await env.call(
            "GET", f"/v1/installations/{installation_id}/storage/vault/login", headers=own
        )
    ).status_code == 404


async def test_users_reach_only_their_workspaces(env: Env) -> None:
    await env.workspace("private")
    outsider = auth_headers(env.settings, Role.user, workspaces=("elsewhere",))
    response = await env.call("GET", "/v1/workspaces/private/installations", headers=outsider)
    assert response.status_code == 403
    listed = (await env.call("GET", "/v1/workspaces", headers=outsider)).json()
    assert listed == {"items": []}


async def test_a_second_instance_may_use_another_version_and_bad_ranges_are_422(env: Env) -> None:
    await env.workspace("versions")
    first = await env.install("versions", module="lib-b", slug="b-new")
    second = await env.install("versions", module="lib-b", slug="b-old", version="~1.4.0")
    assert (first.status_code, second.status_code) == (201, 201), first.text + second.text
    assert (first.json()["version"], second.json()["version"]) == ("2.0.0", "1.4.0")
    bad = await env.install("versions", module="lib-b", slug="b-bad", version="^^1")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["pointer"] == "/body/version"
    taken = await env.install("versions", module="lib-b", slug="b-new")
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/slug-taken")


async def test_an_imported_app_is_a_nested_instance_removed_with_its_parent(env: Env) -> None:
    nlu = example_files("prismeai-nlu")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in nlu.items():
            archive.writestr(path, data)
    await env.publish(native_module("frenchembeddings", "3.0.0"))
    await env.publish(buffer.getvalue())
    await env.workspace("apps")
    response = await env.install("apps", module="nlu", config={"API_KEY": "k-123"})
    assert response.status_code == 201, response.text
    assert response.json()["also_installed"] == ["nlu.french"]
    nested = (await env.call("GET", "/v1/workspaces/apps/installations/nlu.french")).json()
    assert (nested["module"], nested["version"], nested["parent"]) == (
        "frenchembeddings",
        "3.0.0",
        "nlu",
    )
    assert nested["config"]["dimensions"] == 768
    assert (await env.call("DELETE", "/v1/workspaces/apps/installations/nlu")).status_code == 204
    assert (await env.call("GET", "/v1/workspaces/apps/installations")).json() == {"items": []}


async def test_routes_acl_rules_are_refused_since_nothing_would_enforce_them(env: Env) -> None:
    before = (await env.call("GET", "/v1/acl/components")).json()
    refused = await env.call(
        "POST", "/v1/acl/routes", json={"role": "user", "resource": "/v1/*", "action": "*"}
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["errors"][0]["pointer"].endswith("type")
    assert "components" in problem["errors"][0]["detail"]
    assert (await env.call("GET", "/v1/acl/routes")).status_code == 422
    assert (await env.call("GET", "/v1/acl/components")).json() == before


COLLECTION_APP = {  # a look-alike of Prisme.ai's Collection app: one instance per collection
    "index.yml": "name: Collection\nslug: Collection\n"
    "config:\n  schema:\n    collectionName:\n      type: string\n  value: {}\n",
    "automations/find.yml": "slug: find\noutput: '{{config.collectionName}}'\ndo: []\n",
}
CUSTOM_CODE_APP = {  # Prisme.ai's standard app, imported (and called) as 'Custom Code'
    "index.yml": "name: Custom Code\nslug: Custom Code\n",
    "automations/run.yml": "slug: run\noutput: ran\ndo: []\n",
}


def store_app(*imports: str) -> dict[str, str]:
    known = {
        "Counters": "appSlug: Collection\nslug: Counters\nconfig:\n  collectionName: Counters\n",
        "Messages": "appSlug: Collection\nslug: Messages\nconfig:\n  collectionName: Messages\n",
        "Custom Code": "appSlug: Custom Code\nslug: Custom Code\n",
        "Bad": "appSlug: Collection\nslug: Bad/Slug\n",
    }
    return {
        "index.yml": "name: Store\nslug: store\n",
        **{f"imports/{name}.yml": known[name] for name in imports},
        "automations/hello.yml": "slug: hello\noutput: hi\ndo: []\n",
    }


async def publish_app(env: Env, files: dict[str, str], version: str) -> None:
    async with httpx.AsyncClient(base_url=env.registry.url, headers=env.operator) as registry:
        response = await registry.post(
            "/v1/modules",
            params={"version": version},
            content=make_zip(files),
            headers={"content-type": "application/zip"},
        )
        # 409: an earlier test of this module published it already.
        assert response.status_code in (200, 201, 409), response.text


async def test_each_import_is_its_own_nested_instance_even_of_one_app(env: Env) -> None:
    """Two imports of one app (Prisme.ai's Collection, one instance per collection) are two
    nested instances with their own config; a slug with a space (``Custom Code``) is addressed
    on every installation path; upgrade and removal follow all of them."""
    await publish_app(env, COLLECTION_APP, "1.0.0")
    await publish_app(env, CUSTOM_CODE_APP, "1.0.0")
    await publish_app(env, store_app("Counters", "Messages", "Custom Code"), "1.0.0")
    await env.workspace("store-ws")
    # The workspace already has a Collection of its own: the imports are new instances anyway.
    assert (await env.install("store-ws", module="collection")).status_code == 201
    installed = await env.install("store-ws", module="store")
    assert installed.status_code == 201, installed.text
    assert sorted(installed.json()["also_installed"]) == [
        "store.Counters",
        "store.Custom Code",
        "store.Messages",
    ]
    assert installed.json()["dependencies"] == [
        "store.Counters",
        "store.Custom Code",
        "store.Messages",
    ]
    base = "/v1/workspaces/store-ws/installations"
    for name in ("Counters", "Messages"):
        nested = (await env.call("GET", f"{base}/store.{name}")).json()
        assert (nested["module"], nested["parent"]) == ("collection", "store")
        effective = await env.call(
            "GET", f"{base}/store.{name}/effective-config", headers=env.service
        )
        assert effective.status_code == 200, effective.text
        assert effective.json()["config"]["collectionName"] == name

    code = f"{base}/store.Custom%20Code"
    assert (await env.call("GET", code)).json()["parent"] == "store"
    assert (
        await env.call("GET", f"{code}/effective-config", headers=env.service)
    ).status_code == 200
    assert (await env.call("PATCH", f"{code}/config", json={"config": {}})).status_code == 200
    grant = await env.call("POST", f"{code}/acl/grant-users")
    assert grant.status_code == 201, grant.text
    assert (await env.call("GET", f"{base}/store.Custom%21Code")).status_code == 422

    # 1.1.0 drops Messages: the upgrade removes it and keeps the others.
    await publish_app(env, store_app("Counters", "Custom Code"), "1.1.0")
    upgraded = await env.call("POST", f"{base}/store/upgrade", json={})
    assert upgraded.status_code == 200, upgraded.text
    assert upgraded.json()["dependencies"] == ["store.Counters", "store.Custom Code"]
    assert (await env.call("GET", f"{base}/store.Messages")).status_code == 404
    removed = [item["slug"] for item in await env.outbox("modyard.installer.installation.removed")]
    assert "store.Messages" in removed
    # 1.2.0 imports Messages again: it comes back with the import's config.
    await publish_app(env, store_app("Counters", "Messages", "Custom Code"), "1.2.0")
    assert (await env.call("POST", f"{base}/store/upgrade", json={})).status_code == 200
    back = await env.call("GET", f"{base}/store.Messages/effective-config", headers=env.service)
    assert back.json()["config"]["collectionName"] == "Messages"

    assert (await env.call("DELETE", f"{base}/store")).status_code == 204
    left = (await env.call("GET", base)).json()["items"]
    assert [item["slug"] for item in left] == ["collection"]


async def test_an_import_slug_the_api_could_not_address_is_refused(env: Env) -> None:
    await publish_app(env, COLLECTION_APP, "1.0.0")
    await publish_app(
        env, {**store_app("Bad"), "index.yml": "name: Bad\nslug: badstore\n"}, "1.0.0"
    )
    await env.workspace("bad-store")
    refused = await env.install("bad-store", module="badstore")
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/invalid-import-slug")
    assert "'Bad/Slug'" in refused.json()["errors"][0]["detail"]
    assert (await env.call("GET", "/v1/workspaces/bad-store/installations")).json() == {"items": []}
