"""Apps end to end: registry and installer processes, the runtime in process, the real broker.

A workspace is published as an app (new immutable ``prismeai`` versions in the registry),
installed through the installer as app instances, and run under the isolation rules of seed 002;
the nested Chatbot → nlu → french scenario runs over the broker too."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from runtime_env import external_request, registry_and_installer
from sqlalchemy import select

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.context import SLOT
from modyard.runtime.models import NodeLog
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.runtime import FetchReceiver
from modyard.testing.services import (
    auth_headers,
    free_port,
    in_process,
)

pytestmark = pytest.mark.infra


def report(receiver: FetchReceiver, name: str, body: Any = "{{payload}}") -> dict[str, Any]:
    return {"fetch": {"url": f"{receiver.url}/{name}", "method": "post", "body": body}}


class Env:
    def __init__(
        self, client: httpx.AsyncClient, app: Any, registry: str, installer: str, headers: Any
    ) -> None:
        self.client = client
        self.app = app
        self.registry = registry
        self.installer = installer
        self.headers = headers

    @property
    def service(self) -> AutomationService:
        service = SLOT.of(self.app).automations
        assert isinstance(service, AutomationService)
        return service

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await external_request(self.headers, method, url, **kwargs)

    async def workspace(self, slug: str) -> None:
        response = await self.external(
            "POST", f"{self.installer}/v1/workspaces", json={"slug": slug, "name": slug}
        )
        assert response.status_code == 201, response.text
        # These workspaces install each other's apps and follow their new versions: an operator
        # allows that (by default only a workspace's own apps are followed).
        allowed = await self.external(
            "POST",
            f"{self.installer}/v1/workspaces/{slug}/allowed-publishers",
            json={"publisher": "*"},
        )
        assert allowed.status_code == 201, allowed.text

    async def save(self, ws: str, automations: dict[str, Any]) -> None:
        for slug, definition in automations.items():
            response = await self.client.put(
                f"/v1/workspaces/{ws}/automations/{slug}", json=definition, headers=self.headers
            )
            assert response.status_code in (200, 201), response.text
        self.service.programs.forget(ws)

    async def publish(self, ws: str, app: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/workspaces/{ws}/publish", json={"app_name": app}, headers=self.headers
        )

    async def install(self, ws: str, module: str, **body: Any) -> httpx.Response:
        return await self.external(
            "POST",
            f"{self.installer}/v1/workspaces/{ws}/installations",
            json={"module": module, **body},
        )

    async def instances(self, ws: str) -> dict[str, Any]:
        self.service.programs.forget(ws)
        response = await self.client.get(f"/v1/workspaces/{ws}/apps", headers=self.headers)
        assert response.status_code == 200, response.text
        return {item["slug"]: item for item in response.json()["items"]}

    async def wait_instance(
        self, ws: str, slug: str, check: Callable[[dict[str, Any]], bool] = lambda _: True
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def present() -> bool:
            item = (await self.instances(ws)).get(slug)
            if item is not None and check(item):
                found.update(item)
                return True
            return False

        await eventually(present)
        return found

    async def run(self, ws: str, name: str, payload: Any = None) -> httpx.Response:
        self.service.programs.forget(ws)
        return await self.client.post(
            f"/v1/workspaces/{ws}/automations/{name}/run",
            json={"payload": payload or {}},
            headers=self.headers,
        )


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    installer_env = {
        # Prisme.ai's environment overrides, for the app's slug.
        "APP_CONFIG_toolbox_REGION": "eu-west",
        "APP_CONFIG_toolbox_API_URL": "https://from-env.test",
    }
    async with registry_and_installer(infra, "apps", installer_env) as (
        registry,
        installer,
    ):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            db_schema="runtime_apps",
            installer_url=installer.url,
            registry_url=registry.url,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            yield Env(
                client, app, registry.url, installer.url, auth_headers(settings, Role.operator)
            )


def toolbox_automations(receiver: FetchReceiver) -> dict[str, Any]:
    return {
        "execute": {
            "when": {"endpoint": True},
            "arguments": {"name": {"type": "string"}},
            "output": {"config": "{{config}}", "hello": "Hello {{body.name}}"},
            "do": [{"emit": {"event": "executed", "payload": {"name": "{{body.name}}"}}}],
        },
        "helper": {"private": True, "output": "helped", "do": []},
        "usesHelper": {"output": "{{h}}", "do": [{"helper": {"output": "h"}}]},
        "callsParent": {"do": [{"parentOnly": {}}]},
        "context": {"output": "{{run.appInstance}}", "do": []},
        "onPing": {
            "when": {"events": ["ping"]},
            "do": [report(receiver, "instance-ping", "{{payload}}")],
        },
        "onInstalled": {
            "when": {"events": ["workspaces.apps.installed"]},
            "do": [report(receiver, "installed", "{{run.appInstance.fullSlug}}")],
        },
        "onConfigured": {
            "when": {"events": ["workspaces.apps.configured"]},
            "do": [report(receiver, "configured", "{{config.API_URL}}")],
        },
        "onUninstalled": {
            "when": {"events": ["workspaces.apps.uninstalled"]},
            "do": [report(receiver, "uninstalled", "{{run.appInstance.fullSlug}}")],
        },
        "onPublished": {
            "when": {"events": ["apps.published"]},
            "do": [report(receiver, "published", "{{payload.appVersion}}")],
        },
        "onDeleted": {
            "when": {"events": ["apps.deleted"]},
            "do": [report(receiver, "deleted", "{{run.appInstance.fullSlug}}")],
        },
    }


async def test_publishing_a_workspace_as_an_app(env: Env, receiver: FetchReceiver) -> None:
    await env.workspace("tools-src")
    response = await env.client.put(
        "/v1/workspaces/tools-src/app-settings",
        json={
            "label": "Toolbox",
            "description": "Small utilities",
            "photo": "https://cdn.test/toolbox.png",
            "config": {
                "schema": {
                    "API_URL": {"type": "string"},
                    "REGION": {"type": "string"},
                    "FALLBACK": {"type": "string"},
                    "TOKEN": {"type": "string", "secret": True},
                },
                "value": {
                    "API_URL": "https://app.default",
                    "REGION": "app-region",
                    "FALLBACK": "from-app",
                    "TOKEN": "never-published",
                },
            },
        },
        headers=env.headers,
    )
    assert response.status_code == 200, response.text
    await env.save("tools-src", toolbox_automations(receiver))

    first = await env.publish("tools-src", "toolbox")
    assert first.status_code == 201, first.text
    assert first.json()["version"] == "1.0.0"
    version = (
        await env.external("GET", f"{env.registry}/v1/modules/toolbox/versions/1.0.0")
    ).json()
    manifest = version["manifest"]
    assert manifest["format"] == "prismeai"
    assert manifest["description"] == "Small utilities"
    assert manifest["icon"] == "https://cdn.test/toolbox.png"
    assert {a["slug"] for a in manifest["automations"]} >= {"execute", "helper"}
    assert "never-published" not in str(manifest)

    # The name is fixed by the first publish; each publish is a new immutable version.
    renamed = await env.publish("tools-src", "other-name")
    assert renamed.status_code == 409
    assert renamed.json()["app"] == "toolbox"
    await env.workspace("thief")
    taken = await env.publish("thief", "toolbox")
    assert taken.status_code == 409
    listed = await env.client.get("/v1/apps", headers=env.headers)
    assert [item["app"] for item in listed.json()["items"]] == ["toolbox"]


async def test_instances_run_isolated_from_their_parent(env: Env, receiver: FetchReceiver) -> None:
    await env.workspace("parent")
    await env.client.put(
        "/v1/workspaces/parent/app-settings",
        json={"config": {"value": {"PARENT_ONLY": "p"}}},
        headers=env.headers,
    )
    await env.save(
        "parent",
        {
            "parentOnly": {"output": "parent", "do": []},
            "onExecuted": {
                "when": {"events": ["toolbox.executed"]},
                "do": [report(receiver, "parent-heard")],
            },
            "pingInstance": {"do": [{"emit": {"event": "toolbox.ping", "payload": {"n": 2}}}]},
            "pingOwn": {"do": [{"emit": {"event": "ping", "payload": {"n": 1}}}]},
        },
    )
    installed = await env.install("parent", "toolbox", config={"API_URL": "https://instance.test"})
    assert installed.status_code == 201, installed.text
    instance = await env.wait_instance("parent", "toolbox")
    assert instance["app"] == "toolbox"
    assert {a["slug"]: a["endpoint"] for a in instance["automations"]}["execute"] == (
        "toolbox.execute"
    )
    # Native event: the instance hears it was installed.
    assert await receiver.wait_for("installed") == ["toolbox"]

    # Endpoints are namespaced; config is the instance's own, falling back to the app's, with
    # the environment in between (the instance's own value wins over it).
    served = await env.client.post(
        "/v1/workspaces/parent/endpoints/toolbox.execute",
        json={"name": "Ada"},
        headers=env.headers,
    )
    assert served.status_code == 200, served.text
    config = served.json()["config"]
    assert config["API_URL"] == "https://instance.test"
    assert config["REGION"] == "eu-west"
    assert config["FALLBACK"] == "from-app"
    assert "PARENT_ONLY" not in config
    assert served.json()["hello"] == "Hello Ada"
    unprefixed = await env.client.post(
        "/v1/workspaces/parent/endpoints/execute", json={}, headers=env.headers
    )
    assert unprefixed.status_code == 404

    # Its emit is prefixed: the parent listens to the full name.
    assert await receiver.wait_for("parent-heard") == [{"name": "Ada"}]

    # No way up: the parent's automations are not reachable; private ones only from inside.
    assert (await env.run("parent", "toolbox.callsParent")).status_code == 404
    assert (await env.run("parent", "toolbox.helper")).status_code == 403
    assert (await env.run("parent", "toolbox.usesHelper")).json()["output"] == "helped"

    # The parent triggers the instance with the full name; the instance never hears "ping"
    # emitted by the parent itself (sent first: the broker delivers in order).
    assert (await env.run("parent", "pingOwn")).status_code == 200
    assert (await env.run("parent", "pingInstance")).status_code == 200
    assert await receiver.wait_for("instance-ping") == [{"n": 2}]

    # The run context tells the automation it runs in an instance, and which.
    context = (await env.run("parent", "toolbox.context")).json()["output"]
    assert context["fullSlug"] == "toolbox"
    assert context["app"] == "toolbox"


async def test_a_flow_node_calls_an_app_instances_automation(env: Env) -> None:
    """The node's properties are the arguments (checked), the message its body and payload."""
    await env.wait_instance("parent", "toolbox")
    granted = await env.external(
        "POST", f"{env.installer}/v1/workspaces/parent/installations/toolbox/acl/grant-users"
    )
    assert granted.status_code == 201, granted.text
    body = {
        "name": "automation-node",
        "definition": {
            "nodes": {
                "hook": {"component": "core.webhook"},
                "tool": {
                    "component": "toolbox.execute",
                    "properties": {"name": "{{ payload.name }}"},
                },
                "sink": {"component": "core.log", "properties": {"message": "{{ payload.hello }}"}},
            },
            "connections": [{"from": "hook", "to": "tool"}, {"from": "tool", "to": "sink"}],
        },
    }
    created = await env.client.post("/v1/workspaces/parent/flows", json=body, headers=env.headers)
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    started = await env.client.post(
        f"/v1/workspaces/parent/flows/{flow_id}/start", headers=env.headers
    )
    assert started.status_code == 200, started.text
    hooked = await env.client.post(f"/v1/hooks/parent/{flow_id}/hook", json={"name": "Flo"})
    assert hooked.status_code == 202, hooked.text

    async def logged() -> bool:
        async with env.app.state.database.transaction() as session:
            entries = list(
                await session.scalars(
                    select(NodeLog.entry).where(NodeLog.flow_id == uuid.UUID(flow_id))
                )
            )
        return entries == ["Hello Flo"]

    await eventually(logged)


async def test_instances_follow_new_versions_and_hear_native_events(
    env: Env, receiver: FetchReceiver
) -> None:
    await env.wait_instance("parent", "toolbox")
    pinned = await env.install("parent", "toolbox", slug="stable", version="1.0.0", pinned=True)
    assert pinned.status_code == 201, pinned.text
    await env.wait_instance("parent", "stable")

    configured = await env.external(
        "PATCH",
        f"{env.installer}/v1/workspaces/parent/installations/toolbox/config",
        json={"config": {"API_URL": "https://reconfigured.test"}},
    )
    assert configured.status_code == 200, configured.text
    assert "https://reconfigured.test" in await receiver.wait_for("configured")

    republished = await env.publish("tools-src", "toolbox")
    assert republished.json()["version"] == "1.1.0"
    assert "1.1.0" in await receiver.wait_for("published")
    await env.wait_instance("parent", "toolbox", lambda item: item["version"] == "1.1.0")
    assert (await env.instances("parent"))["stable"]["version"] == "1.0.0"

    removed = await env.external(
        "DELETE", f"{env.installer}/v1/workspaces/parent/installations/stable"
    )
    assert removed.status_code == 204, removed.text
    assert "stable" in await receiver.wait_for("uninstalled")

    async def gone() -> bool:
        return "stable" not in await env.instances("parent")

    await eventually(gone)


async def test_nested_apps_chatbot_nlu_french(env: Env, receiver: FetchReceiver) -> None:
    await env.workspace("french-src")
    await env.save(
        "french-src",
        {
            "embed": {
                "arguments": {"text": {"type": "string"}},
                "output": [0.1, 0.2],
                "do": [{"emit": {"event": "processed", "payload": {"text": "{{text}}"}}}],
            },
            "reachUp": {"do": [{"parse": {}}]},
        },
    )
    assert (await env.publish("french-src", "french")).status_code == 201

    await env.workspace("nlu-src")
    assert (await env.install("nlu-src", "french")).status_code == 201
    await env.wait_instance("nlu-src", "french")
    await env.save(
        "nlu-src",
        {
            "parse": {
                "arguments": {"text": {"type": "string"}},
                "output": {"embedding": "{{e}}"},
                "do": [{"french.embed": {"text": "{{text}}", "output": "e"}}],
            },
            "onFrench": {
                "when": {"events": ["french.processed"]},
                "do": [report(receiver, "nlu-heard")],
            },
        },
    )
    published = await env.publish("nlu-src", "nlu")
    assert published.status_code == 201, published.text

    await env.workspace("chatbot")
    await env.save(
        "chatbot",
        {
            "onNested": {
                "when": {"events": ["nlu.french.processed"]},
                "do": [report(receiver, "chatbot-heard")],
            }
        },
    )
    assert (await env.install("chatbot", "nlu")).status_code == 201
    await env.wait_instance("chatbot", "nlu")
    nested = await env.wait_instance("chatbot", "nlu.french")
    assert nested["parent"] == "nlu"

    # Chatbot calls nlu, which calls french; and calls french directly.
    parsed = await env.run("chatbot", "nlu.parse", {"text": "bonjour"})
    assert parsed.status_code == 200, parsed.text
    assert parsed.json()["output"] == {"embedding": [0.1, 0.2]}
    assert parsed.json()["emitted"] == [
        {"type": "nlu.french.processed", "payload": {"text": "bonjour"}}
    ]
    direct = await env.run("chatbot", "nlu.french.embed", {"text": "salut"})
    assert direct.json()["app_instance"] == "nlu.french"

    # Chatbot hears nlu.french.processed, nlu hears french.processed, over the broker.
    heard = await receiver.wait_for("chatbot-heard", 2)
    assert {item["text"] for item in heard} == {"bonjour", "salut"}
    nlu_heard = await receiver.wait_for("nlu-heard", 2)
    assert {item["text"] for item in nlu_heard} >= {"bonjour", "salut"}

    # french reaches nothing above it.
    assert (await env.run("chatbot", "nlu.french.reachUp")).status_code == 404


async def cli(env_vars: dict[str, str], *args: str) -> Any:
    """``modyard <args> --json``; its exit code must be 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modyard.sdk.cli",
        *args,
        "--json",
        env={**os.environ, **env_vars},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode() + stdout.decode()
    return json.loads(stdout)


async def test_cli_publishes_lists_and_runs(env: Env, tmp_path: Path) -> None:
    # The in-process runtime, also served on a loopback port for the CLI's processes.
    server = uvicorn.Server(
        uvicorn.Config(
            env.app, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        await eventually(started, timeout=10)
        port = server.servers[0].sockets[0].getsockname()[1]
        urls = {"MODYARD_RUNTIME_URL": f"http://127.0.0.1:{port}"}
        payload = tmp_path / "payload.yaml"
        payload.write_text("name: Cli\n")
        source = tmp_path / "source.yaml"
        source.write_text("name: Cli\nautomations:\n  hi:\n    output: hi\n    do: []\n")
        published, apps, instances, ran, imported = await asyncio.gather(
            cli(urls, "apps", "publish", "--workspace", "tools-src", "toolbox"),
            cli(urls, "apps", "list"),
            cli(urls, "apps", "list", "--workspace", "chatbot"),
            cli(
                urls,
                "automations",
                "run",
                "toolbox.execute",
                "--workspace",
                "parent",
                "--payload",
                str(payload),
            ),
            cli(urls, "automations", "import", "--workspace", "cli-src", str(source)),
        )
    finally:
        server.should_exit = True
        await serving
    assert published["app"] == "toolbox"
    assert {item["app"] for item in apps} >= {"toolbox", "nlu", "french"}
    assert {item["slug"] for item in instances} == {"nlu", "nlu.french"}
    assert ran["app_instance"] == "toolbox"
    assert imported == {"workspace": "cli-src", "automations": ["hi"]}
    assert ran["emitted"] == [{"type": "toolbox.executed", "payload": {"name": None}}]


async def test_unpublishing_tells_instances_apps_deleted(env: Env, receiver: FetchReceiver) -> None:
    await env.wait_instance("parent", "toolbox")
    response = await env.client.delete("/v1/workspaces/tools-src/publish", headers=env.headers)
    assert response.status_code == 200, response.text
    assert response.json()["notified_instances"] >= 1
    assert "toolbox" in await receiver.wait_for("deleted")
    listed = await env.client.get("/v1/apps", headers=env.headers)
    assert "toolbox" not in {item["app"] for item in listed.json()["items"]}
    again = await env.client.delete("/v1/workspaces/tools-src/publish", headers=env.headers)
    assert again.status_code == 409
    # The name stays the workspace's: publishing again brings the app back under it.
    assert (await env.publish("tools-src", "toolbox")).status_code == 201


async def test_imports_with_app_version_pin_the_nested_instance(env: Env) -> None:
    """A published app whose import is pinned (``appVersion``) keeps that version of the nested
    instance when the imported app publishes again; an unpinned import follows."""
    await env.wait_instance("nlu-src", "french")
    versions = (await env.external("GET", f"{env.registry}/v1/modules/french/index")).json()
    current = max(
        (item["version"] for item in versions["versions"]),
        key=lambda v: tuple(int(p) for p in v.split(".")),
    )
    await env.workspace("pin-src")
    pinned = await env.install("pin-src", "french", version=current, pinned=True)
    assert pinned.status_code == 201, pinned.text
    await env.wait_instance("pin-src", "french")
    await env.save("pin-src", {"hello": {"output": "pinned", "do": []}})
    published = await env.publish("pin-src", "pinner")
    assert published.status_code == 201, published.text
    manifest = (
        await env.external("GET", f"{env.registry}/v1/modules/pinner/versions/1.0.0")
    ).json()["manifest"]
    # A published workspace's imports are mappings: no config expression (issue 19 added the field).
    assert manifest["imports"] == [
        {
            "slug": "french",
            "app": "french",
            "version": current,
            "config": {},
            "config_expression": None,
        }
    ]

    await env.workspace("pin-use")
    assert (await env.install("pin-use", "pinner")).status_code == 201
    nested = await env.wait_instance("pin-use", "pinner.french")
    assert nested["version"] == current

    newer = await env.publish("french-src", "french")
    assert newer.status_code == 201, newer.text
    # The unpinned instance in nlu-src follows; the pinned import stays.
    await env.wait_instance(
        "nlu-src", "french", lambda item: item["version"] == newer.json()["version"]
    )
    assert (await env.instances("pin-use"))["pinner.french"]["version"] == current
    # The installer moved every follower in one transaction: its view is final already.
    kept = await env.external(
        "GET", f"{env.installer}/v1/workspaces/pin-use/installations/pinner.french"
    )
    assert kept.json()["version"] == current


KNOWLEDGE_BASE = {
    "index.yml": "name: Knowledge base\nslug: knowledge-base\n"
    "config:\n  schema:\n    greeting:\n      type: string\n  value:\n    greeting: kb-default\n",
    "automations/search.yml": "slug: search\narguments:\n  query:\n    type: string\n"
    "output: '{{config.greeting}} {{query}}'\ndo: []\n",
}
HELPDESK = {
    "index.yml": "name: Helpdesk\nslug: helpdesk\n"
    "config:\n  schema:\n    greeting:\n      type: string\n  value:\n    greeting: Hello\n",
    # Prisme.ai's way of passing the importing app's whole config on to the imported app.
    "imports/knowledgeBase.yml": "appSlug: knowledge-base\nconfig: '{{config}}'\n",
    "automations/answer.yml": "slug: answer\noutput: '{{found}}'\n"
    "do:\n  - knowledgeBase.search:\n      query: '{{payload.question}}'\n      output: found\n",
}


async def test_an_import_config_expression_passes_the_parents_config(env: Env) -> None:
    """``config: '{{config}}'`` in an import (Prisme.ai): the nested instance runs with its
    parent instance's config, each workspace's own, and follows it when the parent is
    reconfigured."""
    for files in (KNOWLEDGE_BASE, HELPDESK):
        published = await env.external(
            "POST",
            f"{env.registry}/v1/modules",
            params={"version": "1.0.0"},
            files={"archive": ("app.zip", make_zip(files), "application/zip")},
        )
        assert published.status_code == 201, published.text
    manifest = (
        await env.external("GET", f"{env.registry}/v1/modules/helpdesk/versions/1.0.0")
    ).json()["manifest"]
    assert manifest["imports"][0]["config_expression"] == "{{config}}"

    for ws, greeting in (("desk-a", "Bonjour"), ("desk-b", "Hola")):
        await env.workspace(ws)
        installed = await env.install(ws, "helpdesk", config={"greeting": greeting})
        assert installed.status_code == 201, installed.text
        await env.wait_instance(ws, "helpdesk.knowledgeBase")
    for ws, greeting in (("desk-a", "Bonjour"), ("desk-b", "Hola")):
        nested = await env.run(ws, "helpdesk.knowledgeBase.search", {"query": "q"})
        assert nested.status_code == 200, nested.text
        assert nested.json()["output"] == f"{greeting} q"
        through = await env.run(ws, "helpdesk.answer", {"question": "printer"})
        assert through.json()["output"] == f"{greeting} printer"

    configured = await env.external(
        "PATCH",
        f"{env.installer}/v1/workspaces/desk-a/installations/helpdesk/config",
        json={"config": {"greeting": "Salut"}},
    )
    assert configured.status_code == 200, configured.text

    async def follows() -> bool:
        ran = await env.run("desk-a", "helpdesk.knowledgeBase.search", {"query": "q"})
        return bool(ran.json()["output"] == "Salut q")

    await eventually(follows)
    # The other workspace's instances are unchanged.
    other = await env.run("desk-b", "helpdesk.knowledgeBase.search", {"query": "q"})
    assert other.json()["output"] == "Hola q"
