"""A webhook component (``webhook: true``) of an Appmixer look-alike on the real stack, in flows
of two workspaces: ``start`` registers the URL the runtime serves for its node with the vendor
(a loopback server), a request to that URL reaches the component as
``messages.webhook.content`` and is answered with what it gave ``context.response``, its output
goes on to ``core.log``, and ``stop`` unregisters it. A ``start`` that fails refuses the flow's
start with a 422 naming the node, and the flow stays stopped. One workspace's hook address does
not reach the other's flow.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from jsrunner_env import bundle_zip, loopback_server
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

ON_EVENT_JS = """
module.exports = {
    async start(context) {
        if (context.properties.failStart) throw new Error('the vendor refused the token');
        await context.httpRequest.post(context.properties.vendorUrl + '/subscriptions', {
            url: context.getWebhookUrl(),
            key: context.auth.apiKey,
        });
    },
    async stop(context) {
        await context.httpRequest.delete(context.properties.vendorUrl + '/subscriptions', {
            params: { url: context.getWebhookUrl() },
        });
    },
    async receive(context) {
        const request = context.messages.webhook.content;
        await context.sendJson({ method: request.method, data: request.data, query: request.query }, 'out');
        await context.response({ ok: true, key: context.auth.apiKey }, 200, { 'X-Acme': 'seen' });
    }
};
"""


def connector_zip(name: str) -> bytes:
    vendor, service = name.split(".")
    files = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "events/OnEvent/component.json": {
            "name": f"{name}.events.OnEvent",
            "auth": {"service": f"{vendor}:{service}"},
            "webhook": True,
            "outPorts": ["out"],
            "properties": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "vendorUrl": {"type": "string"},
                        "failStart": {"type": "boolean"},
                    },
                }
            },
        },
    }
    return bundle_zip(files, {"events/OnEvent/OnEvent.js": ON_EVENT_JS})


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[str, list[tuple[str, Any]]]]:
    """The vendor's subscription API on loopback; records (method, what it was told)."""
    seen: list[tuple[str, Any]] = []

    async def subscriptions(request: web.Request) -> web.Response:
        if request.method == "POST":
            seen.append(("POST", await request.json()))
        else:
            seen.append((request.method, request.query.get("url")))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/subscriptions", subscriptions)
    async with loopback_server(app) as url:
        yield url, seen


async def test_a_webhook_component_starts_answers_and_stops_in_two_workspaces(
    infra: IsolatedInfra, vendor: tuple[str, list[tuple[str, Any]]]
) -> None:
    vendor_url, seen = vendor
    operator = auth_headers(CommonSettings(), Role.operator)
    name = f"acme{uuid.uuid4().hex[:8]}.events"
    async with registry_and_installer(infra, "jshook") as stack:
        runtime_app = stack.runtime(
            component_timeout_seconds=60, hooks_public_url="https://hooks.example.test"
        )
        runner_app = stack.runner(egress_allow_loopback=True)
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            await publish(client, stack.registry_url, connector_zip(name))
            await _scenario(
                client, runtime, runtime_app, operator, stack.installer_url, vendor_url, seen, name
            )


async def _scenario(
    client: httpx.AsyncClient,
    runtime: httpx.AsyncClient,
    app: Any,
    operator: dict[str, str],
    installer: str,
    vendor_url: str,
    seen: list[tuple[str, Any]],
    name: str,
) -> None:
    flows: dict[str, str] = {}
    refs: dict[str, str] = {}
    for workspace in ("hka", "hkb"):
        await create_workspace(client, installer, workspace)
        await install(
            client, installer, workspace, name, "events", config={"apiKey": f"key-{workspace}"}
        )
        listed = await component_refs(client, installer, workspace)
        refs[workspace] = listed[f"{name}.events.OnEvent"]
        flows[workspace] = await _created_flow(
            runtime, operator, workspace, refs[workspace], vendor_url
        )

    # start(): each registers its own URL with its own credentials.
    for workspace in ("hka", "hkb"):
        await _start(runtime, operator, workspace, flows[workspace], expect=200)
    urls = {
        ws: f"https://hooks.example.test/v1/hooks/{ws}/{flows[ws]}/hook" for ws in ("hka", "hkb")
    }
    assert seen == [
        ("POST", {"url": urls["hka"], "key": "key-hka"}),
        ("POST", {"url": urls["hkb"], "key": "key-hkb"}),
    ]

    # The caller is answered synchronously by the component (any method), and the output goes on.
    answered = await runtime.post(f"/v1/hooks/hka/{flows['hka']}/hook?source=crm", json={"id": 7})
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"ok": True, "key": "key-hka"}
    assert answered.headers["x-acme"] == "seen"
    challenged = await runtime.get(f"/v1/hooks/hkb/{flows['hkb']}/hook?challenge=abc")
    assert challenged.status_code == 200, challenged.text
    assert challenged.json() == {"ok": True, "key": "key-hkb"}

    # One workspace's address does not reach the other's flow.
    crossed = await runtime.post(f"/v1/hooks/hkb/{flows['hka']}/hook", json={"id": 8})
    assert crossed.status_code == 404
    assert crossed.headers["content-type"].startswith("application/problem+json")

    async def logged() -> bool:
        return await node_logs(app, flows["hka"]) == [
            {"method": "POST", "data": {"id": 7}, "query": {"source": "crm"}}
        ] and await node_logs(app, flows["hkb"]) == [
            {"method": "GET", "data": None, "query": {"challenge": "abc"}}
        ]

    await eventually(logged, timeout=60)

    # A start() that fails refuses the start, names the node, and leaves the flow stopped.
    failing = await _created_flow(
        runtime, operator, "hkb", refs["hkb"], vendor_url, fail_start=True
    )
    refused = await _start(runtime, operator, "hkb", failing, expect=422)
    assert refused["type"].endswith("component-start-failed")
    assert "the vendor refused the token" in refused["detail"]
    assert refused["errors"][0]["pointer"] == "/definition/nodes/hook"
    status = await runtime.get(f"/v1/workspaces/hkb/flows/{failing}", headers=operator)
    assert status.json()["status"] == "stopped"
    stopped_hook = await runtime.post(f"/v1/hooks/hkb/{failing}/hook", json={})
    assert stopped_hook.status_code == 409
    assert len(seen) == 2  # nothing registered for it

    # stop(): unregisters, and the address no longer runs the flow.
    stopped = await runtime.post(f"/v1/workspaces/hka/flows/{flows['hka']}/stop", headers=operator)
    assert stopped.status_code == 200, stopped.text
    assert seen[2:] == [("DELETE", urls["hka"])]
    after = await runtime.post(f"/v1/hooks/hka/{flows['hka']}/hook", json={"id": 9})
    assert after.status_code == 409
    assert len(await node_logs(app, flows["hka"])) == 1


async def _created_flow(
    runtime: httpx.AsyncClient,
    operator: dict[str, str],
    workspace: str,
    component: str,
    vendor_url: str,
    *,
    fail_start: bool = False,
) -> str:
    properties: dict[str, Any] = {"vendorUrl": vendor_url}
    if fail_start:
        properties["failStart"] = True
    definition = {
        "nodes": {
            "hook": {"component": component, "properties": properties},
            "sink": {"component": "core.log", "properties": {"message": "{{ payload }}"}},
        },
        "connections": [{"from": "hook", "to": "sink"}],
    }
    flow = await runtime.post(
        f"/v1/workspaces/{workspace}/flows",
        json={"name": f"{component}-{uuid.uuid4().hex[:6]}", "definition": definition},
        headers=operator,
    )
    assert flow.status_code == 201, flow.text
    return str(flow.json()["id"])


async def _start(
    runtime: httpx.AsyncClient,
    operator: dict[str, str],
    workspace: str,
    flow_id: str,
    *,
    expect: int,
) -> dict[str, Any]:
    last: list[httpx.Response] = []

    async def answered() -> bool:
        # Until the runtime has heard of the installation, the start is refused as invalid.
        response = await runtime.post(
            f"/v1/workspaces/{workspace}/flows/{flow_id}/start", headers=operator
        )
        last[:] = [response]
        return response.status_code != 422 or "component-start-failed" in response.text

    await eventually(answered, timeout=90)
    assert last[0].status_code == expect, last[0].text
    return dict(last[0].json())
