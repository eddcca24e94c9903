"""The egress policy in the runtime, live: automations' fetch, core.http, the workspaces'
allow-lists and system webhooks, against the real broker, database and servers on loopback.

The tests run with MODYARD_EGRESS_ALLOW_LOOPBACK=true (set by the shared fixtures), as
development does: even so, the platform's own endpoints must stay out of reach.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy import text as sql
from yarl import URL

from modyard.common.auth import Role
from modyard.common.db.database import Database
from modyard.common.egress.policy import EgressPolicy, EgressRefused
from modyard.common.secrets import SecretBox
from modyard.common.settings import CommonSettings
from modyard.runtime.app import create_app
from modyard.runtime.automations.fetch import Fetcher
from modyard.runtime.components.base import ComponentError, ExecutionContext
from modyard.runtime.components.core.http import HttpComponent
from modyard.runtime.deployer_client import DeployerClient
from modyard.runtime.egress import gate
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.egress.models import WorkspaceEgress
from modyard.runtime.executors import HttpExecutor
from modyard.runtime.models import InstalledComponent
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.webhooks import notify
from modyard.runtime.webhooks.delivery import WebhookDeliverer
from modyard.runtime.webhooks.models import DeliveryStatus, WebhookDelivery
from modyard.runtime.webhooks.payloads import EXAMPLES, FLOW_STOPPED
from modyard.runtime.webhooks.schemas import WebhookCreate
from modyard.runtime.webhooks.service import create_webhook
from modyard.testing.dns import ChosenNames
from modyard.testing.infra import IsolatedInfra
from modyard.testing.runtime import FetchReceiver
from modyard.testing.runtime_webhooks import WebhookReceiver, create_webhook_tables
from modyard.testing.services import auth_headers, in_process

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


# --- system webhooks, refused at send time ---------------------------------------------------


@pytest.fixture(scope="module")
async def webhook_db(infra: IsolatedInfra) -> AsyncIterator[Database]:
    """The webhook tables in a schema of their own: no running app's deliverer competes."""
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="egress_webhooks"
    )
    database = Database(settings)
    await create_webhook_tables(database)
    yield database
    await database.dispose()


@pytest.fixture
async def deliverers(webhook_db: Database) -> AsyncIterator[Callable[..., WebhookDeliverer]]:
    async with webhook_db.transaction() as session:
        await session.execute(sql("TRUNCATE system_webhooks, webhook_deliveries"))
    made: list[WebhookDeliverer] = []

    def make(policy: EgressPolicy, resolver: AbstractResolver | None = None) -> WebhookDeliverer:
        deliverer = WebhookDeliverer(
            webhook_db, WEBHOOK_BOX, timeout=5.0, max_attempts=5, egress=policy, resolver=resolver
        )
        made.append(deliverer)
        return deliverer

    yield make
    for deliverer in made:
        await deliverer.aclose()


WEBHOOK_BOX = SecretBox([SecretBox.generate_key()])


async def subscribe(database: Database, url: str) -> None:
    """Subscribed as the API does: the URL passes the runtime's policy now."""
    async with database.transaction() as session:
        await create_webhook(
            session,
            WebhookCreate(url=url, events=["*"], secret="s" * 32),
            WEBHOOK_BOX,
            created_by="test",
        )


async def announce(database: Database) -> None:
    async with database.transaction() as session:
        assert await notify(session, FLOW_STOPPED, EXAMPLES[FLOW_STOPPED]) == 1


async def latest_delivery(database: Database) -> WebhookDelivery:
    async with database.transaction() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(1)
        return (await session.scalars(query)).one()


def deployment_policy(infra_settings: CommonSettings, *, loopback: bool) -> EgressPolicy:
    return EgressPolicy.from_settings(
        infra_settings.model_copy(update={"egress_allow_loopback": loopback})
    )


async def assert_refused_once(
    deliverer: WebhookDeliverer, database: Database, rule: str
) -> WebhookDelivery:
    """One attempt, failed at once with the rule recorded; nothing left to retry."""
    assert await deliverer.deliver_once() == 1
    delivery = await latest_delivery(database)
    assert delivery.status == DeliveryStatus.failed.value
    assert delivery.attempts == 1
    assert delivery.last_status_code is None
    assert (delivery.last_error or "").startswith(f"egress-refused ({rule}):"), delivery.last_error
    assert [entry["error"] for entry in delivery.attempt_log] == [delivery.last_error]
    assert await deliverer.deliver_once() == 0  # not retried
    return delivery


async def test_a_webhook_allowed_when_subscribed_is_refused_at_send_time_once_the_allowance_is_gone(
    infra_settings: CommonSettings,
    webhook_db: Database,
    deliverers: Callable[..., WebhookDeliverer],
) -> None:
    async with WebhookReceiver() as receiver:
        # Subscribed while loopback is allowed (this process's policy, as in development) ...
        await subscribe(webhook_db, receiver.url)
        allowing = deliverers(deployment_policy(infra_settings, loopback=True))
        await announce(webhook_db)
        assert await allowing.deliver_once() == 1
        assert (await latest_delivery(webhook_db)).status == DeliveryStatus.delivered.value
        assert len(receiver.requests) == 1
        # ... then the operator takes the allowance away (MODYARD_EGRESS_ALLOW_LOOPBACK=false
        # and a restart): the stored webhook is refused when it is sent, not retried.
        refusing = deliverers(deployment_policy(infra_settings, loopback=False))
        await announce(webhook_db)
        await assert_refused_once(refusing, webhook_db, "loopback")
        assert len(receiver.requests) == 1  # nothing reached the receiver


async def test_a_webhook_whose_name_moves_to_a_refused_address_is_refused_at_send_time(
    infra_settings: CommonSettings,
    webhook_db: Database,
    deliverers: Callable[..., WebhookDeliverer],
) -> None:
    """Subscribed by name; the name later resolves to a private address, then to loopback on
    the broker's management port. System webhooks are deployment-wide (operators subscribe
    them), so the deployment's policy decides, not a workspace's allow-list."""
    management_port = URL(infra_settings.amqp_management_url).port or 15672
    answers = {"hooks.egress.test": "127.0.0.1", "status.egress.test": "192.0.2.10"}
    names = ChosenNames(answers)
    policy = deployment_policy(infra_settings, loopback=True)
    async with WebhookReceiver() as receiver:
        await subscribe(webhook_db, f"http://hooks.egress.test:{receiver.port}/hooks")
        deliverer = deliverers(policy, names)
        await announce(webhook_db)
        assert await deliverer.deliver_once() == 1
        assert (await latest_delivery(webhook_db)).status == DeliveryStatus.delivered.value
        assert len(receiver.requests) == 1

        # The name moves. A new client (a restart, or once the 10 s DNS cache and the pooled
        # connection are gone) resolves it again and connects only to what passes.
        answers["hooks.egress.test"] = "10.20.30.40"
        await deliverer.aclose()
        await announce(webhook_db)
        await assert_refused_once(deliverer, webhook_db, "private")
        assert len(receiver.requests) == 1

    # A name on the management API's port, public when subscribed, later answering 127.0.0.1.
    async with webhook_db.transaction() as session:
        await session.execute(sql("TRUNCATE system_webhooks, webhook_deliveries"))
    await subscribe(webhook_db, f"http://status.egress.test:{management_port}/api/whoami")
    answers["status.egress.test"] = "127.0.0.1"
    await deliverer.aclose()
    await announce(webhook_db)
    refused = await assert_refused_once(deliverer, webhook_db, "platform-endpoint")
    assert "management API" in (refused.last_error or "")


# --- the http executor and the ports allow-list ----------------------------------------------


class PublishedAt(DeployerClient):
    """The deployer's lookup answered with an endpoint of the test's choosing."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(RuntimeSettings())
        self.endpoint_url = endpoint

    async def endpoint(self, deployment: str) -> str:
        return self.endpoint_url


def http_component(module: str, **options: Any) -> InstalledComponent:
    return InstalledComponent(
        workspace=TENANT_A,
        slug="echo",
        component="Echo",
        installation_id=uuid.uuid4(),
        module=module,
        version="1.0.0",
        role="action",
        executor="http",
        spec={"name": "Echo", "executor_options": options},
        present=True,
    )


async def test_the_ports_allow_list_holds_on_the_http_executor_path(
    infra_settings: CommonSettings,
) -> None:
    """With MODYARD_EGRESS_ALLOW_PORTS=443, the executor still reaches the port the deployer
    published (an operator's endpoint, not a tenant's), and only there: a module's path stays
    on it, a published endpoint on a platform port is refused, and so are tenants' core.http
    calls to the same port, in every workspace."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"outputs": {"out": [await request.json()]}})

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    settings = infra_settings.model_copy(
        update={"egress_allow_loopback": True, "egress_allow_ports": "443"}
    )
    egress = RuntimeEgress(EgressPolicy.from_settings(settings))
    component = HttpComponent(egress)
    async with TestServer(app, host="127.0.0.1") as server:
        endpoint = f"http://127.0.0.1:{server.port}"
        deployer = PublishedAt(endpoint)
        executor = HttpExecutor(deployer, timeout_seconds=5, egress=egress)
        try:
            outputs = await executor.call(http_component("echo"), {"payload": 1})
            assert outputs == {"out": [{"payload": 1}]}
            assert seen == ["/components/Echo"]

            # A module path cannot move the request elsewhere: it stays on the endpoint.
            await executor.call(http_component("echo", path="@127.0.0.1:8080/x"), {"payload": 2})
            assert seen == ["/components/Echo", "/@127.0.0.1:8080/x"]
            # A published endpoint on the broker's management port: the endpoint allowance
            # lifts the ports list and the address class, never the platform rule.
            deployer.endpoint_url = infra_settings.amqp_management_url
            with pytest.raises(ComponentError) as platform:
                await executor.call(http_component("echo"), {"payload": 3})
            assert platform.value.details["rule"] == "platform-endpoint"
            assert len(seen) == 2

            # Tenants' calls through the same gate: the port is not theirs, in any workspace.
            for workspace in (TENANT_A, TENANT_B):
                context = node(workspace)
                context.properties = {"url": f"{endpoint}/components/Echo", "method": "POST"}
                with pytest.raises(ComponentError) as port:
                    await component.run(context, "in", {})
                assert (port.value.retryable, port.value.details["rule"]) == (False, "port")
                assert "MODYARD_EGRESS_ALLOW_PORTS" in port.value.message
            assert len(seen) == 2
        finally:
            await executor.close()
            await deployer.close()


# --- clients closed --------------------------------------------------------------------------


async def test_an_executor_and_a_fetcher_without_a_gate_close_the_clients_they_borrowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no app installed a gate (unit tests, scripts), the executor and the fetcher
    borrow the fallback gate's clients; closing them closes those clients, which otherwise
    outlived their event loop ("Unclosed client session" at the end of pytest)."""
    monkeypatch.setattr(gate, "_current", None)
    monkeypatch.setattr(gate, "_fallback", None)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"outputs": {"out": [await request.json()]}})

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        endpoint = f"http://127.0.0.1:{server.port}"
        deployer = PublishedAt(endpoint)
        executor = HttpExecutor(deployer, timeout_seconds=5)
        fetcher = Fetcher()
        try:
            await executor.call(http_component("echo"), {"payload": 1})
            answer_ = await fetcher(
                "POST", URL(f"{endpoint}/x"), headers={}, body={"a": 1}, timeout=5
            )
            assert answer_.status == 200
            borrowed = list(gate.current().clients._clients.values())
            assert len(borrowed) == 2  # the executor's endpoint allowance, and the base policy
            assert not any(client.closed for client in borrowed)
        finally:
            await executor.close()
            await fetcher.aclose()
            await deployer.close()
        assert all(client.closed for client in borrowed)
        # The fallback opens new ones on next use.
        assert not gate.current().clients.client().closed
        await gate.release(None)


# --- the allow-list's copy ---------------------------------------------------------------------


class _SlowLists:
    """A database whose allow-list reads wait until released, counted."""

    def __init__(self) -> None:
        self.reads = 0
        self.lists: dict[str, list[str]] = {}
        self.release = asyncio.Event()
        self.began = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.reads += 1
        lists = dict(self.lists)  # what the read sees is what was stored when it began
        self.began.set()
        await self.release.wait()

        class Session:
            async def get(self, _model: Any, workspace: str) -> Any:
                hosts = lists.get(workspace)
                return None if hosts is None else WorkspaceEgress(allow_cidrs=[], allow_hosts=hosts)

        yield Session()


async def test_executions_in_flight_share_one_read_of_an_expired_allow_list() -> None:
    database = _SlowLists()
    database.lists["ws"] = ["a.example"]
    egress = RuntimeEgress(EgressPolicy.from_settings(CommonSettings()), cast(Database, database))
    waiting = [asyncio.create_task(egress.allowance("ws")) for _ in range(100)]
    await asyncio.sleep(0)
    database.release.set()
    allowances = await asyncio.gather(*waiting)
    assert database.reads == 1
    assert len({id(allowance) for allowance in allowances}) == 1
    assert allowances[0] is not None
    assert allowances[0].hosts
    assert await egress.allowance("ws") is allowances[0]  # the copy, no read
    assert database.reads == 1
    await egress.aclose()


async def test_a_list_put_during_a_read_is_the_one_used_next() -> None:
    database = _SlowLists()
    database.lists["ws"] = ["old.example"]
    egress = RuntimeEgress(EgressPolicy.from_settings(CommonSettings()), cast(Database, database))
    old_read = asyncio.create_task(egress.allowance("ws"))
    await database.began.wait()
    database.lists["ws"] = []  # the PUT: the list emptied, and this replica told so
    egress.forget("ws")
    database.release.set()
    assert await old_read is not None  # it began before the PUT
    assert await egress.allowance("ws") is None  # read again, not the old copy
    assert database.reads == 2
    await egress.aclose()


async def test_reads_of_two_workspaces_lists_at_once_give_each_its_own() -> None:
    # The shared read is per workspace: an execution of one workspace waiting on a read that
    # another workspace's execution began would get that workspace's allow-list.
    database = _SlowLists()
    database.lists["ws-a"] = ["a.example"]
    database.lists["ws-b"] = ["b.example"]
    egress = RuntimeEgress(EgressPolicy.from_settings(CommonSettings()), cast(Database, database))
    first = asyncio.create_task(egress.allowance("ws-a"))
    second = asyncio.create_task(egress.allowance("ws-b"))
    await asyncio.sleep(0)
    database.release.set()
    allowance_a, allowance_b = await asyncio.gather(first, second)
    assert database.reads == 2
    assert allowance_a is not None
    assert allowance_b is not None
    assert (allowance_a.hosts, allowance_b.hosts) == (("a.example",), ("b.example",))
    again = await egress.allowance("ws-b")  # the copies are per workspace too
    assert again is allowance_b
    await egress.aclose()
