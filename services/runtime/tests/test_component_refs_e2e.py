"""Modules whose names hold dots, installed under their default slug, used in flows by the exact
``ref`` the installer's ``GET …/components`` gives: registry and installer processes, the runtime
in process, a module worker on the real broker."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from runtime_env import external_request, module_archive, node_log_entries, registry_and_installer

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.sdk.cell import ComponentCall, Worker, WorkerOptions
from modyard.sdk.cell import ModuleWorker as SdkModuleWorker
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

WS, OTHER = "refs", "refs-other"
MODULE = "acme.weather"
FORECAST = "acme.weather.forecast.GetForecast"


def native_zip(name: str, components: list[str], version: str = "1.0.0") -> bytes:
    document = {
        "name": name,
        "version": version,
        "kind": "connector",
        "components": [
            {
                "name": component,
                "role": "action",
                "executor": {"type": "amqp"},
                "out_ports": [{"name": "out"}],
            }
            for component in components
        ],
    }
    return module_archive(document)


def appmixer_zip() -> bytes:
    """A look-alike Appmixer connector (vendor tree, ``vendor.service`` bundle, one component)."""
    base = "acme/tickets"
    component = {
        "name": "acme.tickets.issues.CreateTicket",
        "inPorts": [{"name": "in"}],
        "outPorts": [{"name": "out"}],
    }
    files = {
        f"{base}/bundle.json": {"name": "acme.tickets", "version": "1.0.0"},
        f"{base}/service.json": {"name": "acme.tickets", "label": "Tickets"},
        f"{base}/issues/CreateTicket/component.json": component,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, document in files.items():
            archive.writestr(path, json.dumps(document))
        archive.writestr(
            f"{base}/issues/CreateTicket/CreateTicket.js",
            "module.exports = { async receive(context) { return context.sendJson({}, 'out'); } };",
        )
    return buffer.getvalue()


class Env:
    def __init__(
        self,
        client: httpx.AsyncClient,
        app: Any,
        registry: str,
        installer: str,
        settings: RuntimeSettings,
    ) -> None:
        self.client, self.app, self.registry, self.installer = client, app, registry, installer
        self.operator = auth_headers(settings, Role.operator)

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await external_request(self.operator, method, url, **kwargs)

    async def publish(self, archive: bytes) -> None:
        response = await self.external(
            "POST",
            f"{self.registry}/v1/modules",
            content=archive,
            headers={"content-type": "application/zip"},
        )
        assert response.status_code == 201, response.text

    async def install(self, body: dict[str, Any], ws: str = WS) -> httpx.Response:
        """Install, and open the installation's components to users as an operator would."""
        response = await self.external(
            "POST", f"{self.installer}/v1/workspaces/{ws}/installations", json=body
        )
        if response.status_code == 201:
            slug = response.json()["slug"]
            granted = await self.external(
                "POST", f"{self.installer}/v1/workspaces/{ws}/installations/{slug}/acl/grant-users"
            )
            assert granted.status_code == 201, granted.text
        return response

    async def installations(self, ws: str = WS) -> list[str]:
        response = await self.external("GET", f"{self.installer}/v1/workspaces/{ws}/installations")
        return [item["slug"] for item in response.json()["items"]]

    async def refs(self, ws: str = WS) -> dict[tuple[str, str], str]:
        """``(installation, component name) -> ref`` as ``GET …/components`` gives them."""
        response = await self.external("GET", f"{self.installer}/v1/workspaces/{ws}/components")
        assert response.status_code == 200, response.text
        return {(item["installation"], item["name"]): item["ref"] for item in response.json()}

    async def flow(self, nodes: dict[str, Any], connections: list[Any], ws: str = WS) -> str:
        definition = {"nodes": nodes, "connections": connections}
        body = {"name": f"flow-{uuid.uuid4().hex[:6]}", "definition": definition}
        response = await self.client.post(
            f"/v1/workspaces/{ws}/flows", json=body, headers=self.operator
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def start(self, flow_id: str, ws: str = WS) -> httpx.Response:
        return await self.client.post(
            f"/v1/workspaces/{ws}/flows/{flow_id}/start", headers=self.operator
        )

    async def status(self, flow_id: str, ws: str = WS) -> str:
        response = await self.client.get(
            f"/v1/workspaces/{ws}/flows/{flow_id}", headers=self.operator
        )
        return str(response.json()["status"])

    async def valid(self, component: str, ws: str = WS) -> bool:
        flow_id = await self.flow({"n": {"component": component}}, [], ws)
        response = await self.client.get(
            f"/v1/workspaces/{ws}/flows/{flow_id}/validation", headers=self.operator
        )
        return bool(response.json()["valid"])

    async def logs(self, flow_id: str) -> list[Any]:
        return await node_log_entries(self.app, flow_id)


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "refs") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            installer_url=installer.url,
            component_timeout_seconds=5,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            environment = Env(client, app, registry.url, installer.url, settings)
            for slug in (WS, OTHER):
                created = await environment.external(
                    "POST", f"{installer.url}/v1/workspaces", json={"slug": slug, "name": slug}
                )
                assert created.status_code == 201, created.text
            await environment.publish(native_zip(MODULE, [FORECAST, "Echo"]))
            await environment.publish(appmixer_zip())
            yield environment


async def test_a_dotted_module_under_its_default_slug_runs_in_a_flow_by_the_ref_listed(
    env: Env,
) -> None:
    installed = await env.install({"module": MODULE})
    assert installed.status_code == 201, installed.text
    assert installed.json()["slug"] == MODULE
    refs = await env.refs()
    # The Appmixer-style full name is the ref under the default slug; a plain name gets the slug.
    assert refs[(MODULE, FORECAST)] == FORECAST
    assert refs[(MODULE, "Echo")] == "acme.weather.Echo"

    credentials: dict[str, Any] = {}

    async def issued() -> bool:
        response = await env.client.post(
            f"/v1/workspaces/{WS}/installations/{MODULE}/worker-credentials",
            headers=env.operator,
        )
        credentials.update(response.json() if response.status_code == 201 else {})
        return response.status_code == 201

    await eventually(issued)
    sdk = SdkModuleWorker(MODULE)
    seen: list[str] = []

    @sdk.component(FORECAST)
    async def forecast(payload: Any, call: ComponentCall) -> Any:
        seen.append(call.component)
        return {"forecast": payload}

    worker: Worker = sdk.worker(
        WorkerOptions(amqp_url=credentials["amqp_url"], queue=credentials["queue"])
    )
    await worker.start()
    try:
        nodes = {
            "hook": {"component": "core.webhook"},
            "weather": {"component": refs[(MODULE, FORECAST)]},
            "sink": {"component": "core.log"},
        }
        connections = [{"from": "hook", "to": "weather"}, {"from": "weather", "to": "sink"}]
        flow_id = await env.flow(nodes, connections)

        async def started() -> bool:  # the runtime learns the installation from its events
            return (await env.start(flow_id)).status_code == 200

        await eventually(started)
        hooked = await env.client.post(f"/v1/hooks/{WS}/{flow_id}/hook", json={"city": "Brno"})
        assert hooked.status_code == 202, hooked.text

        async def logged() -> bool:
            return await env.logs(flow_id) == [{"forecast": {"city": "Brno"}}]

        await eventually(logged)
        assert seen == [FORECAST]
    finally:
        await worker.stop()


async def test_another_instance_and_references_written_before_resolve_to_their_installation(
    env: Env,
) -> None:
    installed = await env.install({"module": MODULE, "slug": "weather2"})
    assert installed.status_code == 201, installed.text
    refs = await env.refs()
    assert refs[("weather2", FORECAST)] == "weather2.forecast.GetForecast"
    for reference in (
        "weather2.forecast.GetForecast",
        f"weather2.{FORECAST}",  # '<slug>.<full name>', the form that worked before
        f"weather2:{FORECAST}",
    ):
        await eventually(lambda reference=reference: env.valid(reference))  # type: ignore[misc]


async def test_an_appmixer_connector_under_its_default_slug_is_usable_by_its_appmixer_name(
    env: Env,
) -> None:
    installed = await env.install({"module": "acme.tickets"})
    assert installed.status_code == 201, installed.text
    assert installed.json()["slug"] == "acme.tickets"
    name = "acme.tickets.issues.CreateTicket"
    assert (await env.refs())[("acme.tickets", name)] == name
    nodes = {"hook": {"component": "core.webhook"}, "ticket": {"component": name}}
    flow_id = await env.flow(nodes, [{"from": "hook", "to": "ticket"}])

    async def started() -> bool:
        return (await env.start(flow_id)).status_code == 200

    await eventually(started)
    assert await env.status(flow_id) == "running"


async def test_a_ref_naming_two_components_is_refused_and_the_listed_refs_say_which(
    env: Env,
) -> None:
    # Installation 'acme' with a component 'weather.Echo' vs 'acme.weather' with 'Echo'.
    await env.publish(native_zip("acme-tools", ["weather.Echo"]))
    installed = await env.install({"module": "acme-tools", "slug": "acme"})
    assert installed.status_code == 201, installed.text
    refs = await env.refs()
    assert refs[("acme", "weather.Echo")] == "acme:weather.Echo"
    assert refs[(MODULE, "Echo")] == "acme.weather:Echo"

    async def known() -> bool:  # both installations reached the runtime
        return await env.valid("acme:weather.Echo") and await env.valid("acme.weather:Echo")

    await eventually(known)
    flow_id = await env.flow({"e": {"component": "acme.weather.Echo"}}, [])
    refused = await env.start(flow_id)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["pointer"] == "/definition/nodes/e/component"
    assert "'acme:weather.Echo'" in error["detail"]
    assert "'acme.weather:Echo'" in error["detail"]
    assert await env.status(flow_id) == "stopped"


async def test_a_major_upgrade_stops_the_flows_of_that_installation_only(env: Env) -> None:
    # 'acme' (acme-tools) and 'acme.weather' share the prefix 'acme.': only acme's users stop.
    tools_flow = await env.flow({"t": {"component": "acme:weather.Echo"}}, [])
    weather_flow = await env.flow({"w": {"component": FORECAST}}, [])
    for flow_id in (tools_flow, weather_flow):
        started = await env.start(flow_id)
        assert started.status_code == 200, started.text
    await env.publish(native_zip("acme-tools", ["weather.Echo"], version="2.0.0"))
    upgraded = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{WS}/installations/acme/upgrade",
        json={"version": "2.0.0", "accept_breaking": True},
    )
    assert upgraded.status_code == 200, upgraded.text

    async def stopped() -> bool:
        return await env.status(tools_flow) == "stopped"

    await eventually(stopped)
    assert await env.status(weather_flow) == "running"


async def test_a_ref_of_one_workspace_names_nothing_in_another(env: Env) -> None:
    assert FORECAST in (await env.refs(WS)).values()
    before = await env.installations(OTHER)
    flow_id = await env.flow({"w": {"component": FORECAST}}, [], OTHER)
    refused = await env.start(flow_id, OTHER)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["pointer"] == "/definition/nodes/w/component"
    assert f"has no installed component {FORECAST!r}" in error["detail"]
    assert await env.status(flow_id, OTHER) == "stopped"
    assert await env.installations(OTHER) == before == []


async def test_the_slug_core_is_refused_because_flows_could_not_reach_it(env: Env) -> None:
    await env.publish(native_zip("core", ["Thing"]))
    before = await env.installations()
    for body, said in (
        ({"module": "core"}, "the module's name 'core' is the default slug"),
        ({"module": MODULE, "slug": "core"}, "choose another slug"),
        ({"module": MODULE, "slug": "core.tools"}, "choose another slug"),
    ):
        refused = await env.install(body)
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["type"].endswith("/reserved-slug")
        assert [e["pointer"] for e in problem["errors"]] == ["/body/slug"]
        assert said in problem["detail"]
    assert await env.installations() == before


def prismeai_zip(slug: str) -> bytes:
    """A look-alike single-file Prisme.ai workspace whose slug holds a dot."""
    document = {
        "name": "Acme NLU",
        "slug": slug,
        "version": 1,
        "automations": {"hello": {"name": "hello", "when": {"endpoint": True}, "do": []}},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.yml", yaml.safe_dump(document))
    return buffer.getvalue()


async def test_an_app_named_with_dots_installs_under_a_slug_without_them(env: Env) -> None:
    # An app instance's dots name its imports: 'acme.nlu' would be an import of 'acme'.
    await env.publish(prismeai_zip("acme.nlu"))
    before = await env.installations()
    refused = await env.install({"module": "acme.nlu", "slug": "acme.nlu"})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/invalid-slug")
    assert [e["pointer"] for e in problem["errors"]] == ["/body/slug"]
    assert "'acme-nlu'" in problem["detail"]
    assert await env.installations() == before

    installed = await env.install({"module": "acme.nlu"})
    assert installed.status_code == 201, installed.text
    assert installed.json()["slug"] == "acme-nlu"
    assert (await env.refs())[("acme-nlu", "hello")] == "acme-nlu.hello"
