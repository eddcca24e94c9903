"""An Appmixer look-alike connector on the real stack: published to the registry, installed in
two workspaces with their own credentials, run by the runtime's ``js`` executor through the
broker and the JavaScript runner (which fetches the module, installs its npm dependency from the
npm registry, and runs it sandboxed). A webhook goes in, records come out; each workspace's
component sees only its own installation's credentials.

Its twin with an npm dependency that does not exist is refused with npm's error, retried as
configured, and leaves nothing installed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from jsrunner_env import SHARED_CACHE, bundle_zip, loopback_server
from stack_env import (
    component_refs,
    create_workspace,
    install,
    node_logs,
    publish,
    registry_and_installer,
)

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

#: The component: looks the contact up at the vendor's API (a loopback server here) with the
#: installation's API key, and formats the answer with an npm dependency it declares.
ENRICH_JS = """
const ms = require('ms');
module.exports = {
    async receive(context) {
        const { email } = context.messages.in.content;
        const response = await context.httpRequest({
            url: context.properties.apiUrl + '/contacts',
            params: { email },
            headers: { Authorization: 'Bearer ' + context.auth.apiKey },
        });
        await context.sendJson({
            email,
            company: response.data.company,
            seenBy: response.data.key,
            window: ms(60000),
            correlated: Boolean(context.messages.in.correlationId),
        }, 'out');
    }
};
"""


def connector_zip(name: str, dependencies: dict[str, str]) -> bytes:
    """A ``vendor.service`` bundle with one module and one component, as Appmixer lays it out."""
    vendor, service = name.split(".")
    files = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "contacts/Enrich/component.json": {
            "name": f"{name}.contacts.Enrich",
            "auth": {"service": f"{vendor}:{service}"},
            "inPorts": ["in"],
            "outPorts": ["out"],
            "properties": {
                "schema": {"type": "object", "properties": {"apiUrl": {"type": "string"}}}
            },
        },
        "contacts/Enrich/package.json": {
            "name": "enrich",
            "version": "1.0.0",
            "dependencies": dependencies,
        },
    }
    return bundle_zip(files, {"contacts/Enrich/Enrich.js": ENRICH_JS})


@pytest.fixture
async def vendor_api() -> AsyncIterator[str]:
    async def contacts(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response({"company": request.query["email"].split("@")[1], "key": key})

    app = web.Application()
    app.router.add_get("/contacts", contacts)
    async with loopback_server(app) as url:
        yield url


async def test_an_appmixer_component_runs_in_flows_of_two_workspaces_with_their_own_auth(
    infra: IsolatedInfra, vendor_api: str
) -> None:
    operator = auth_headers(CommonSettings(), Role.operator)
    suffix = uuid.uuid4().hex[:8]
    good, broken = f"acme{suffix}.crm", f"acme{suffix}.brokencrm"
    async with registry_and_installer(infra, "js") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner(egress_allow_loopback=True)
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            await _scenario(
                client,
                runtime,
                runtime_app,
                operator,
                stack.registry_url,
                stack.installer_url,
                vendor_api,
                good,
                broken,
            )


async def _scenario(
    client: httpx.AsyncClient,
    runtime: httpx.AsyncClient,
    app: Any,
    operator: dict[str, str],
    registry: str,
    installer: str,
    vendor_api: str,
    good: str,
    broken: str,
) -> None:
    for name, dependencies in (
        (good, {"ms": "2.1.3"}),
        (broken, {"modyard-surely-not-a-package-" + uuid.uuid4().hex[:6]: "1.0.0"}),
    ):
        await publish(client, registry, connector_zip(name, dependencies))

    flows: dict[str, str] = {}
    for workspace, key in (("jsa", "key-of-a"), ("jsb", "key-of-b")):
        await create_workspace(client, installer, workspace)
        for slug, module in (("crm", good), ("broken", broken)):
            await install(client, installer, workspace, module, slug, config={"apiKey": key})
        refs = await component_refs(client, installer, workspace)
        for component in (f"{good}.contacts.Enrich", f"{broken}.contacts.Enrich"):
            flow_id = await _start_flow(runtime, operator, workspace, refs[component], vendor_api)
            flows[f"{workspace}:{component.split('.')[1]}"] = flow_id

    for workspace in ("jsa", "jsb"):
        hooked = await runtime.post(
            f"/v1/hooks/{workspace}/{flows[f'{workspace}:crm']}/hook",
            json={"email": f"ada@{workspace}.example"},
        )
        assert hooked.status_code == 202, hooked.text

    for workspace, key in (("jsa", "key-of-a"), ("jsb", "key-of-b")):
        expected = [
            {
                "email": f"ada@{workspace}.example",
                "company": f"{workspace}.example",
                "seenBy": key,  # this installation's credentials, never the other's
                "window": "1m",
                "correlated": True,
            }
        ]

        async def recorded(
            flow_id: str = flows[f"{workspace}:crm"], wanted: list[Any] = expected
        ) -> bool:
            return await node_logs(app, flow_id) == wanted

        await eventually(recorded, timeout=90)

    # The twin: npm cannot install its dependency; the message is not retried and is kept.
    flow_id = flows["jsa:brokencrm"]
    hooked = await runtime.post(f"/v1/hooks/jsa/{flow_id}/hook", json={"email": "x@y.example"})
    assert hooked.status_code == 202

    async def unprocessed() -> list[dict[str, Any]]:
        response = await runtime.get(
            "/v1/unprocessed-messages", params={"flow": flow_id}, headers=operator
        )
        return list(response.json()["items"])

    async def refused() -> bool:
        return bool(await unprocessed())

    await eventually(refused, timeout=120)
    [item] = await unprocessed()
    error = json.dumps(item)
    assert "npm could not install the dependencies of contacts/Enrich/package.json" in error
    assert "404" in error or "E404" in error  # npm's own words
    assert await node_logs(app, flow_id) == []
    leftovers = [p.name for p in (SHARED_CACHE / "modules").glob(f"{broken}*")]
    assert leftovers == []
    staging = list((SHARED_CACHE / "staging").iterdir())
    assert not [p for p in staging if (p / "contacts").exists() and broken in str(p)]


async def _start_flow(
    runtime: httpx.AsyncClient,
    operator: dict[str, str],
    workspace: str,
    component: str,
    vendor_api: str,
) -> str:
    definition = {
        "nodes": {
            "hook": {"component": "core.webhook"},
            "enrich": {"component": component, "properties": {"apiUrl": vendor_api}},
            "sink": {"component": "core.log", "properties": {"message": "{{ payload }}"}},
        },
        "connections": [{"from": "hook", "to": "enrich"}, {"from": "enrich", "to": "sink"}],
        "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 3},
    }
    flow = await runtime.post(
        f"/v1/workspaces/{workspace}/flows",
        json={"name": component, "definition": definition},
        headers=operator,
    )
    assert flow.status_code == 201, flow.text
    flow_id = str(flow.json()["id"])

    last: list[str] = []

    async def started() -> bool:
        response = await runtime.post(
            f"/v1/workspaces/{workspace}/flows/{flow_id}/start", headers=operator
        )
        last[:] = [response.text]
        return response.status_code == 200

    try:
        await eventually(started, timeout=60)  # once the runtime has heard of the installation
    except AssertionError as late:
        raise AssertionError(f"the flow did not start: {last}") from late
    return flow_id
