"""A flow that runs an Appmixer look-alike component with its owner's account, end to end: the
real registry and installer as processes, the runtime and the JavaScript runner in process
(the runner served on loopback so the installer reaches it for auth.js). The account's API key
is checked by auth.js's ``validate`` at a loopback vendor, the flow refuses to start without the
owner's account (every problem listed), and the component gets the account as ``context.auth``
read by the runner from the installer (never in the AMQP message)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from aiohttp import web
from jsrunner_env import SHARED_CACHE, bundle_zip, loopback_server
from stack_env import component_refs, node_logs, publish

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.runtime.app import create_app as create_runtime
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import (
    auth_headers,
    free_port,
    in_process,
    run_modyard,
    served,
    service_process,
)

pytestmark = pytest.mark.infra

KEYS = {"key-ann-secret-1": "ann@vendor.test", "key-bob-secret-2": "bob@vendor.test"}

AUTH_JS = """'use strict';
const me = async (context) => (await context.httpRequest({
    url: context.baseUrl + '/me',
    headers: { Authorization: 'Bearer ' + context.apiKey },
})).data;
module.exports = {
    type: 'apiKey',
    definition: {
        auth: {
            apiKey: { type: 'text', name: 'API Key' },
            baseUrl: { type: 'text', name: 'Base URL' },
        },
        accountNameFromProfileInfo: 'email',
        requestProfileInfo: me,
        validate: async (context) => { await me(context); return true; },
    },
};
"""

WHOAMI_JS = """module.exports = {
    async start(context) {
        // As a trigger registers its webhook with the vendor: with the node's account.
        await context.httpRequest({
            url: context.auth.baseUrl + '/me',
            headers: { Authorization: 'Bearer ' + context.auth.apiKey, 'X-Phase': 'start' },
        });
    },
    async receive(context) {
        const response = await context.httpRequest({
            url: context.auth.baseUrl + '/me',
            headers: { Authorization: 'Bearer ' + context.auth.apiKey },
        });
        // The service configuration stays context.config; context.auth has both (Appmixer).
        await context.sendJson({
            seenAs: response.data.email,
            config: context.config,
            signingSecret: context.auth.signingSecret,
        }, 'out');
    }
};
"""


def connector(name: str) -> bytes:
    vendor, service = name.split(".")
    documents = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "core/Whoami/component.json": {
            "name": f"{name}.core.Whoami",
            "auth": {"service": f"{vendor}:{service}"},
            "inPorts": ["in"],
            "outPorts": ["out"],
        },
    }
    return bundle_zip(documents, {"auth.js": AUTH_JS, "core/Whoami/Whoami.js": WHOAMI_JS})


async def test_a_flow_runs_with_its_owners_account(infra: IsolatedInfra) -> None:
    started_with: list[str] = []

    async def me(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if request.headers.get("X-Phase") == "start":
            started_with.append(key)
        if key not in KEYS:
            return web.json_response({"message": "Unknown API key"}, status=401)
        return web.json_response({"email": KEYS[key]})

    vendor = web.Application()
    vendor.router.add_get("/me", me)
    operator = auth_headers(CommonSettings(), Role.operator)
    ws = f"acc{uuid.uuid4().hex[:6]}"
    name = f"acme{uuid.uuid4().hex[:8]}.crm"
    runner_port, installer_port = free_port(), free_port()
    async with (
        loopback_server(vendor) as vendor_url,
        service_process(
            "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "reg_acc"}
        ) as registry,
    ):
        runner_app = create_runner(
            JsRunnerSettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                registry_url=registry.url,
                installer_url=f"http://127.0.0.1:{installer_port}",
                db_schema="js_runner_acc",
                cache_dir=str(SHARED_CACHE),
                egress_allow_loopback=True,
            )
        )
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "inst_acc",
            "MODYARD_REGISTRY_URL": registry.url,
            "MODYARD_INSTALLER_JS_RUNNER_URL": f"http://127.0.0.1:{runner_port}",
        }
        async with (
            served(runner_app, port=runner_port),
            service_process("installer", installer_env, port=installer_port) as installer,
        ):
            runtime_app = create_runtime(
                RuntimeSettings(
                    database_url=infra.database_url,
                    amqp_url=infra.amqp_url,
                    installer_url=installer.url,
                    db_schema="runtime_acc",
                    component_timeout_seconds=60,
                )
            )
            async with (
                in_process(runtime_app) as runtime,
                httpx.AsyncClient(headers=operator, timeout=60) as client,
            ):
                await _scenario(
                    client, runtime, runtime_app, registry.url, installer.url, ws, name, vendor_url
                )
    # start() of both nodes ran with Ann's account (the flow's start waits for them).
    assert started_with == ["key-ann-secret-1", "key-ann-secret-1"]


async def _scenario(
    client: httpx.AsyncClient,
    runtime: httpx.AsyncClient,
    runtime_app: Any,
    registry: str,
    installer: str,
    ws: str,
    name: str,
    vendor_url: str,
) -> None:
    settings = CommonSettings()
    operator = auth_headers(settings, Role.operator)
    ann = auth_headers(settings, Role.user, subject="ann@acme.test", workspaces=(ws,))
    bob = auth_headers(settings, Role.user, subject="bob@acme.test", workspaces=(ws,))
    await publish(client, registry, connector(name))
    created = await client.post(
        f"{installer}/v1/workspaces",
        json={"slug": ws, "name": ws, "members": ["ann@acme.test", "bob@acme.test"]},
    )
    assert created.status_code == 201, created.text
    service = name.replace(".", ":")
    installed = await client.post(
        f"{installer}/v1/workspaces/{ws}/installations",
        json={"module": name, "slug": "crm", "config": {service: {"signingSecret": "s-3"}}},
    )
    assert installed.status_code == 201, installed.text
    granted = await client.post(f"{installer}/v1/workspaces/{ws}/installations/crm/acl/grant-users")
    assert granted.status_code == 201, granted.text
    accounts = {}
    for who, headers, key in ((("ann", ann, "key-ann-secret-1")), ("bob", bob, "key-bob-secret-2")):
        account = await client.post(
            f"{installer}/v1/workspaces/{ws}/accounts",
            json={"service": service, "credentials": {"apiKey": key, "baseUrl": vendor_url}},
            headers=headers,
        )
        assert account.status_code == 201, account.text
        accounts[who] = account.json()["id"]
    await _cli(installer, ws, service, vendor_url, ann["Authorization"].removeprefix("Bearer "))
    ref = (await component_refs(client, installer, ws))[f"{name}.core.Whoami"]

    def definition(account: str | None) -> dict[str, Any]:
        node: dict[str, Any] = {"component": ref}
        if account:
            node["account"] = account
        return {
            "nodes": {
                "hook": {"component": "core.webhook"},
                "who": node,
                "again": {**node, "account": str(uuid.uuid4())} if account else node,
                "sink": {"component": "core.log", "properties": {"message": "{{ payload }}"}},
            },
            "connections": [{"from": "hook", "to": "who"}, {"from": "who", "to": "sink"}],
            "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 2},
        }

    flow = await runtime.post(
        f"/v1/workspaces/{ws}/flows",
        json={"name": "who", "owner": "ann@acme.test", "definition": definition(None)},
        headers=operator,
    )
    assert flow.status_code == 201, flow.text
    flow_id = flow.json()["id"]
    start = f"/v1/workspaces/{ws}/flows/{flow_id}/start"

    async def refused_for_accounts() -> bool:
        response = await runtime.post(start, headers=operator)
        return response.status_code == 422 and "account" in response.text

    await eventually(refused_for_accounts, timeout=60)  # once the runtime heard of the install
    refused = (await runtime.post(start, headers=operator)).json()
    assert {e["pointer"] for e in refused["errors"]} == {
        "/definition/nodes/who/account",
        "/definition/nodes/again/account",
    }
    # Bob's account is not the owner's; an unknown id is no account: both said at once.
    flow_path = f"/v1/workspaces/{ws}/flows/{flow_id}"
    replaced = await runtime.put(
        flow_path,
        json={"name": "who", "owner": "ann@acme.test", "definition": definition(accounts["bob"])},
        headers=operator,
    )
    assert replaced.status_code == 200, replaced.text
    refused = (await runtime.post(start, headers=operator)).json()
    details = {e["pointer"]: e["detail"] for e in refused["errors"]}
    assert "not the flow owner's" in details["/definition/nodes/who/account"]
    assert "has no account" in details["/definition/nodes/again/account"]

    good = definition(accounts["ann"])
    good["nodes"]["again"]["account"] = accounts["ann"]
    replaced = await runtime.put(
        flow_path,
        json={"name": "who", "owner": "ann@acme.test", "definition": good},
        headers=operator,
    )
    assert replaced.status_code == 200, replaced.text
    started = await runtime.post(start, headers=operator)
    assert started.status_code == 200, started.text
    hooked = await runtime.post(f"/v1/hooks/{ws}/{flow_id}/hook", json={"go": True})
    assert hooked.status_code == 202, hooked.text

    async def recorded() -> bool:
        return await node_logs(runtime_app, flow_id) == [
            {
                "seenAs": "ann@vendor.test",
                "config": {"signingSecret": "s-3"},
                "signingSecret": "s-3",
            }
        ]

    await eventually(recorded, timeout=90)


async def _cli(installer: str, ws: str, service: str, vendor_url: str, token: str) -> None:
    """``modyard accounts`` as Ann (her token): the form, a refusal in the vendor's words, add,
    list, test, delete."""
    env = {"MODYARD_INSTALLER_URL": installer, "MODYARD_TOKEN": token}
    form, _ = await run_modyard(env, "accounts", "add", service, "-w", ws)
    assert "--set apiKey=" in form
    assert "--set baseUrl=" in form
    _, refused = await run_modyard(
        env,
        "accounts", "add", service, "-w", ws,
        "--set", "apiKey=key-wrong", "--set", f"baseUrl={vendor_url}",
        expect=1,
    )  # fmt: skip
    assert "Unknown API key" in refused
    created, _ = await run_modyard(
        env,
        "accounts", "add", service, "-w", ws, "--name", "from the CLI",
        "--set", "apiKey=key-ann-secret-1", "--set", f"baseUrl={vendor_url}", "--json",
    )  # fmt: skip
    assert (created["name"], created["owner"]) == ("from the CLI", "ann@acme.test")
    listed, _ = await run_modyard(env, "accounts", "list", "-w", ws, "--service", service, "--json")
    assert created["id"] in [item["id"] for item in listed]
    assert "key-ann-secret-1" not in str(listed)
    tested, _ = await run_modyard(env, "accounts", "test", created["id"], "-w", ws, "--json")
    assert tested["valid"] is True
    deleted, _ = await run_modyard(env, "accounts", "delete", created["id"], "-w", ws)
    assert "deleted" in deleted
