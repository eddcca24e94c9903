"""The egress policy in the runtime, live: automations' fetch, core.http, the workspaces'
allow-lists and system webhooks, against the real broker, database and servers on loopback.

The tests run with MODYARD_EGRESS_ALLOW_LOOPBACK=true (set by the shared fixtures), as
development does: even so, the platform's own endpoints must stay out of reach.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from yarl import URL

from modyard.common.auth import Role
from modyard.common.egress.policy import EgressPolicy, EgressRefused
from modyard.common.settings import CommonSettings
from modyard.common.testing.infra import IsolatedInfra
from modyard.common.testing.services import auth_headers, in_process
from modyard.runtime.app import create_app
from modyard.runtime.components.base import ComponentError, ExecutionContext
from modyard.runtime.components.core.http import HttpComponent
from modyard.runtime.egress import gate
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.testing import FetchReceiver

pytestmark = pytest.mark.infra

TENANT_A = "egress-a"
TENANT_B = "egress-b"
PROBLEM = "https://modyard.dev/problems/egress-refused"


class Env:
    def __init__(self, client: httpx.AsyncClient, settings: RuntimeSettings) -> None:
        self.client = client
        self.settings = settings
        self.operator = auth_headers(settings, Role.operator)
        self.user_a = auth_headers(settings, Role.user, workspaces=(TENANT_A,))
        self.user_b = auth_headers(settings, Role.user, workspaces=(TENANT_B,))

    async def fetch(self, ws: str, fetch: dict[str, Any]) -> httpx.Response:
        """Save and run an automation of ``ws`` that fetches and returns the answer."""
        definition = {
            "output": "{{answer}}",
            "do": [{"fetch": {**fetch, "output": "answer", "outputMode": "detailed_response"}}],
        }
        saved = await self.client.put(
            f"/v1/workspaces/{ws}/automations/probe", json=definition, headers=self.operator
        )
        assert saved.status_code in (200, 201), saved.text
        return await self.client.post(
            f"/v1/workspaces/{ws}/automations/probe/run", json={}, headers=self.operator
        )


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="runtime_egress"
    )
    assert settings.egress_allow_loopback  # as in development: the hard case
    async with in_process(create_app(settings)) as client:
        yield Env(client, settings)


def management(infra_settings: CommonSettings) -> tuple[URL, str]:
    """The broker's management API and an administrator's Basic credentials."""
    amqp = URL(infra_settings.amqp_url)
    credentials = base64.b64encode(f"{amqp.user}:{amqp.password}".encode()).decode()
    return URL(infra_settings.amqp_management_url), f"Basic {credentials}"


def spellings(host_port: tuple[str, int]) -> list[str]:
    _, port = host_port
    return [
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.2:{port}",
        f"http://localhost:{port}",
        f"http://[::1]:{port}",
        f"http://[::ffff:127.0.0.1]:{port}",
        f"http://0.0.0.0:{port}",
    ]


async def test_the_reported_exploit_an_automation_cannot_read_the_broker_management_api(
    env: Env, infra_settings: CommonSettings, receiver: FetchReceiver
) -> None:
    api, basic = management(infra_settings)
    whoami = f"{api}/api/whoami"
    # The hole is real: without the policy, the management API answers as administrator.
    async with aiohttp.ClientSession() as plain:
        async with plain.get(whoami, headers={"Authorization": basic}) as answer:
            assert "administrator" in (await answer.json())["tags"]

    for base in spellings((api.host or "", api.port or 15672)):
        response = await env.fetch(
            TENANT_A, {"url": f"{base}/api/whoami", "headers": {"Authorization": basic}}
        )
        assert response.status_code == 422, (base, response.text)
        problem = response.json()
        assert problem["type"] == PROBLEM
        assert problem["rule"] == "platform-endpoint", base
        assert "management API" in problem["detail"]
        assert "administrator" not in response.text

    # The credentials in the URL, as reported: refused as such.
    userinfo = whoami.replace("http://", f"http://{URL(infra_settings.amqp_url).user}:x@")
    refused = await env.fetch(TENANT_A, {"url": userinfo})
    assert (refused.status_code, refused.json()["rule"]) == (422, "userinfo")

    # Decimal, octal, hex and short spellings of 127.0.0.1.
    for host in ("2130706433", "017700000001", "0x7f.1", "127.1"):
        spelled = await env.fetch(TENANT_A, {"url": f"http://{host}:{api.port}/api/whoami"})
        assert (spelled.status_code, spelled.json()["rule"]) == (422, "ip-spelling"), host

    # Loopback itself is allowed here: the refusal is the platform rule, not a blanket one.
    allowed = await env.fetch(TENANT_A, {"url": f"{receiver.url}/egress", "method": "post"})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["output"]["status"] == 200


def live_ports(infra_settings: CommonSettings) -> dict[str, int]:
    ports = {
        "database": URL(infra_settings.database_url).port or 5432,
        "broker": URL(infra_settings.amqp_url).port or 5672,
        "management": URL(infra_settings.amqp_management_url).port or 15672,
    }
    for name, port in ports.items():  # they are live: a plain connection gets through
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert name
    return ports


def node(workspace: str) -> ExecutionContext:
    return ExecutionContext(
        workspace=workspace,
        flow_id="flow-egress",
        node_id="http-1",
        message_id="m-1",
        properties={},
    )


async def test_core_http_cannot_reach_the_database_or_the_broker(
    infra_settings: CommonSettings,
) -> None:
    settings = infra_settings.model_copy(update={"egress_allow_loopback": True})
    egress = RuntimeEgress(EgressPolicy.from_settings(settings))
    component = HttpComponent(egress)
    try:
        for name, port in live_ports(infra_settings).items():
            for base in spellings(("127.0.0.1", port)):
                context = node(TENANT_A)
                context.properties = {"url": f"{base}/", "method": "POST", "body": "x"}
                with pytest.raises(ComponentError) as caught:
                    await component.run(context, "in", {})
                error = caught.value
                assert error.retryable is False, (name, base)
                assert error.details["kind"] == "egress-refused"
                assert error.details["type"] == PROBLEM
                assert error.details["rule"] == "platform-endpoint", (name, base)
    finally:
        await component.aclose()


async def test_a_fixed_url_to_the_platform_is_refused_when_the_flow_starts(
    infra_settings: CommonSettings,
) -> None:
    settings = infra_settings.model_copy(update={"egress_allow_loopback": True})
    component = HttpComponent(RuntimeEgress(EgressPolicy.from_settings(settings)))
    with pytest.raises(ValueError, match="platform-endpoint"):
        component.check({"url": f"{infra_settings.amqp_management_url}/api/whoami"})
    with pytest.raises(ValueError, match="ip-spelling"):
        component.check({"url": "http://2130706433/"})
    component.check({"url": "http://10.1.2.3/"})  # a workspace's allow-list may open that one


async def test_a_workspace_allow_list_opens_its_destinations_for_it_and_no_other(
    env: Env,
) -> None:
    url = f"/v1/workspaces/{TENANT_A}/egress"
    # Members read, only operators write.
    assert (await env.client.get(url, headers=env.user_a)).json()["allow_cidrs"] == []
    assert (await env.client.get(url, headers=env.user_b)).status_code == 403
    refused = await env.client.put(url, json={"allow_cidrs": ["10.42.0.0/16"]}, headers=env.user_a)
    assert refused.status_code == 403
    assert (await env.client.get(url, headers=env.user_a)).json()["allow_cidrs"] == []
    # Bad entries are refused, saying what to write; loopback cannot be opened this way.
    bad = await env.client.put(url, json={"allow_cidrs": ["10.42.0.1/16"]}, headers=env.operator)
    assert bad.status_code == 422
    assert "write 10.42.0.0/16" in bad.text
    loop = await env.client.put(url, json={"allow_cidrs": ["127.0.0.0/8"]}, headers=env.operator)
    assert loop.status_code == 422
    host = await env.client.put(url, json={"allow_hosts": ["a*b.example"]}, headers=env.operator)
    assert host.status_code == 422

    put = await env.client.put(
        url,
        json={"allow_cidrs": ["10.42.0.0/16"], "allow_hosts": ["*.corp.test"]},
        headers=env.operator,
    )
    assert put.status_code == 200, put.text
    assert put.json()["allow_cidrs"] == ["10.42.0.0/16"]
    assert (await env.client.get(url, headers=env.user_a)).json()["allow_hosts"] == ["*.corp.test"]

    # Tenant B is refused before any connection (the literal is checked, no packet is sent).
    other = await env.fetch(TENANT_B, {"url": "http://10.42.0.7:9/"})
    assert other.status_code == 422
    assert (other.json()["type"], other.json()["rule"]) == (PROBLEM, "private")
    # Tenant A's policy lets that address (and its names' private addresses) through, and
    # still refuses the platform (decided here: tests send no packet off loopback).
    policy_a = (await gate.current().client(TENANT_A)).policy
    policy_b = (await gate.current().client(TENANT_B)).policy
    policy_a.check_url("http://10.42.0.7:9/")
    policy_a.check_address("api.corp.test", "10.9.8.7", 443)
    for check in (
        lambda: policy_b.check_url("http://10.42.0.7:9/"),
        lambda: policy_b.check_address("api.corp.test", "10.9.8.7", 443),
        lambda: policy_a.check_url("http://10.43.0.1/"),
        lambda: policy_a.check_url("http://127.0.0.1:15672/api/whoami"),
    ):
        with pytest.raises(EgressRefused):
            check()
    # B's list did not change.
    other_list = await env.client.get(f"/v1/workspaces/{TENANT_B}/egress", headers=env.user_b)
    assert other_list.json() == {
        "workspace": TENANT_B,
        "allow_cidrs": [],
        "allow_hosts": [],
        "updated_by": None,
        "updated_at": None,
    }


async def test_a_system_webhook_to_a_refused_address_is_not_subscribed(
    env: Env, infra_settings: CommonSettings
) -> None:
    before = (await env.client.get("/v1/system-webhooks", headers=env.operator)).json()
    for url, rule in [
        (f"{infra_settings.amqp_management_url}/api/whoami", "platform-endpoint"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://2130706433:8080/", "ip-spelling"),
        ("http://u:p@example.com/hook", "userinfo"),
    ]:
        response = await env.client.post(
            "/v1/system-webhooks",
            json={"url": url, "events": ["*"], "secret": "s" * 32},
            headers=env.operator,
        )
        assert response.status_code == 422, (url, response.text)
        assert (response.json()["type"], response.json()["rule"]) == (PROBLEM, rule)
        assert response.json()["errors"][0]["pointer"] == "/body/url"
    after = (await env.client.get("/v1/system-webhooks", headers=env.operator)).json()
    assert after == before


# --- this machine's own addresses ----------------------------------------------------------

TENANT_C = "egress-own-c"
TENANT_D = "egress-own-d"


def interface_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This machine's non-loopback, non-link-local addresses as iproute2 lists them (read
    independently of the policy's own list)."""
    ip = shutil.which("ip")
    assert ip, "iproute2's ip lists the interfaces"
    listed = json.loads(subprocess.run([ip, "-j", "addr"], capture_output=True, check=True).stdout)
    found = []
    for interface in listed:
        for item in interface.get("addr_info", []):
            address = ipaddress.ip_address(item["local"])
            if not (address.is_loopback or address.is_link_local):
                found.append(address)
    return found


async def test_this_machines_own_addresses_stay_refused_to_every_workspace(
    env: Env, infra_settings: CommonSettings
) -> None:
    """A workspace whose operator opened the machine's network (its CIDR) still cannot reach
    the platform's ports on the machine's own interface addresses, where a service bound to
    0.0.0.0 answers. The host name resolves to 127.0.x.1 only on many machines, so the list
    comes from the interfaces. Decided by the live runtime's policy: no packet is sent."""
    addresses = interface_addresses()
    assert addresses, "this machine has an interface address besides loopback"
    networks = sorted(
        {
            str(ipaddress.ip_network(f"{a}/{24 if a.version == 4 else 64}", strict=False))
            for a in addresses
        }
    )
    put = await env.client.put(
        f"/v1/workspaces/{TENANT_C}/egress", json={"allow_cidrs": networks}, headers=env.operator
    )
    assert put.status_code == 200, put.text
    management_port = URL(infra_settings.amqp_management_url).port
    ports = {**live_ports(infra_settings), "management": management_port or 15672}
    for tenant in (TENANT_C, TENANT_D):
        policy = (await gate.current().client(tenant)).policy
        for address in addresses:
            host = f"[{address}]" if address.version == 6 else str(address)
            for name, port in ports.items():
                with pytest.raises(EgressRefused) as refused:
                    policy.check_url(f"http://{host}:{port}/api/whoami")
                assert refused.value.rule == "platform-endpoint", (tenant, address, name)
                assert str(port) in refused.value.detail
    # D's list did not change; C's is what the operator wrote.
    lists = [
        (await env.client.get(f"/v1/workspaces/{ws}/egress", headers=env.operator)).json()
        for ws in (TENANT_C, TENANT_D)
    ]
    assert lists[0]["allow_cidrs"] == networks
    assert (lists[1]["allow_cidrs"], lists[1]["updated_by"]) == ([], None)
