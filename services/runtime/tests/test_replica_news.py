"""What each runtime process does with its news (replica_news.py), without a broker: each event
drops its own copy and no other, a reconnect drops them all, and a broken handler leaves the others
their news. The live path (two replicas, the outbox, the broker) is test_replica_caches.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import httpx

from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.common.db.database import Database
from modyard.common.egress.policy import EgressPolicy
from modyard.common.settings import CommonSettings
from modyard.contracts.events import EventData, payload
from modyard.contracts.events.deployer import DEPLOYMENT_STATUS_CHANGED, DeploymentStatusChanged
from modyard.contracts.events.installer import INSTALLATION_CONFIGURED, InstallationEvent
from modyard.contracts.events.runtime import (
    EGRESS_CHANGED,
    FLOW_CHANGED,
    EgressChanged,
    FlowChanged,
)
from modyard.runtime.components.base import ComponentError
from modyard.runtime.deployer_client import DeployerClient
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.egress.models import WorkspaceEgress
from modyard.runtime.engine.flow_cache import FlowCache
from modyard.runtime.failures import RetryPolicy
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.replica_news import ReplicaNews, drop_copies_on_news

LONG = 300.0


class Rows:
    """A database answering ``session.get`` for flows and allow-lists, counting reads by key."""

    def __init__(self) -> None:
        self.reads: dict[Any, int] = {}
        self.flow = SimpleNamespace(
            id=uuid.uuid4(),
            workspace="ws",
            name="f",
            owner="me",
            status="running",
            revision=1,
            definition={"nodes": {"a": {"component": "core.log", "properties": {}}}},
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async def get(model: Any, key: Any) -> Any:
            self.reads[key] = self.reads.get(key, 0) + 1
            if model is WorkspaceEgress:
                return WorkspaceEgress(allow_cidrs=[], allow_hosts=[f"{key}.example"])
            return self.flow

        yield SimpleNamespace(get=get)


class Installer:
    """The installer's effective-config endpoint, counting requests; ``fail`` answers 503s."""

    def __init__(self) -> None:
        self.requests = 0
        self.greeting = "v1"
        self.fail = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        greeting = self.greeting
        await self.gate.wait()
        if self.fail:
            return httpx.Response(503)
        return httpx.Response(200, json={"config": {"greeting": greeting}})

    def client(self) -> InstallerClient:
        settings = CommonSettings(installer_url="http://installer.test")
        return InstallerClient(
            settings, config_cache_seconds=LONG, transport=httpx.MockTransport(self.handle)
        )


class Deployer:
    """The deployer's deployment endpoint, counting requests by deployment; each answer names
    the deployment's current port."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.port = 8001
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[1]
        self.requests[name] = self.requests.get(name, 0) + 1
        await self.gate.wait()
        endpoint = f"http://127.0.0.1:{self.port}"
        return httpx.Response(200, json={"name": name, "status": "running", "endpoint": endpoint})

    def client(self) -> DeployerClient:
        settings = CommonSettings(deployer_url="http://deployer.test")
        return DeployerClient(settings, transport=httpx.MockTransport(self.handle))


def status_changed(name: str, port: int) -> CloudEvent:
    data = DeploymentStatusChanged(
        id=str(uuid.uuid4()),
        name=name,
        image="registry.test/m",
        tag="1",
        status="running",
        previous_status="starting",
        desired="running",
        reason=None,
        restarts=0,
        generation=2,
        port=port,
    )
    return news_of(DEPLOYMENT_STATUS_CHANGED, data)


def news_of(kind: str, data: EventData) -> CloudEvent:
    return new_event(source="/test", type=kind, data=payload(data))


def configured(workspace: str, slug: str) -> CloudEvent:
    data = InstallationEvent(
        workspace=workspace,
        slug=slug,
        installation_id=str(uuid.uuid4()),
        module="m",
        version="1.0.0",
        format="modyard",
        kind="connector",
        pinned=False,
        parent_id=None,
        components=[],
    )
    return news_of(INSTALLATION_CONFIGURED, data)


async def test_each_event_drops_its_own_copy_and_a_reconnect_drops_every_copy() -> None:
    rows, installer = Rows(), Installer()
    flows = FlowCache(cast(Database, rows), RetryPolicy(), ttl=LONG)
    egress = RuntimeEgress(
        EgressPolicy.from_settings(CommonSettings()), cast(Database, rows), cache_seconds=LONG
    )
    config = installer.client()
    deployer = Deployer().client()
    news = ReplicaNews()
    drop_copies_on_news(news, flows, egress, config, deployer)
    flow_id = rows.flow.id

    async def read_everything() -> None:
        await flows.get(flow_id)
        await egress.allowance("a")
        await egress.allowance("b")
        await config.effective_config("ws", "cfg")
        await config.effective_config("ws", "other")

    try:
        await read_everything()
        await read_everything()  # all copies now
        assert rows.reads == {flow_id: 1, "a": 1, "b": 1}
        assert installer.requests == 2

        news.hear(news_of(EGRESS_CHANGED, EgressChanged(workspace="a")))
        news.hear(news_of(FLOW_CHANGED, FlowChanged(workspace="ws", flow_id=str(flow_id))))
        installer.greeting = "v2"
        news.hear(configured("ws", "cfg"))
        await read_everything()
        # Each event dropped its own copy: workspace b's list and the other installation's
        # config are the copies they were.
        assert rows.reads == {flow_id: 2, "a": 2, "b": 1}
        assert installer.requests == 3
        assert await config.effective_config("ws", "cfg") == {"greeting": "v2"}
        assert await config.effective_config("ws", "other") == {"greeting": "v1"}

        news.reconnected()  # news may have been missed: nothing is trusted
        await read_everything()
        assert rows.reads == {flow_id: 3, "a": 3, "b": 2}
        assert installer.requests == 5
    finally:
        await config.close()
        await deployer.close()
        await egress.aclose()


async def test_a_deployment_whose_status_changed_is_asked_for_again_and_no_other() -> None:
    # A redeploy moves a container module to another port: every runtime process hears the
    # deployer's status_changed and asks again, instead of failing its next call on the old port.
    rows, deployer = Rows(), Deployer()
    flows = FlowCache(cast(Database, rows), RetryPolicy(), ttl=LONG)
    egress = RuntimeEgress(
        EgressPolicy.from_settings(CommonSettings()), cast(Database, rows), cache_seconds=LONG
    )
    config, endpoints = Installer().client(), deployer.client()
    news = ReplicaNews()
    drop_copies_on_news(news, flows, egress, config, endpoints)
    try:
        assert await endpoints.endpoint("moved") == "http://127.0.0.1:8001"
        assert await endpoints.endpoint("stays") == "http://127.0.0.1:8001"
        deployer.port = 8002
        news.hear(status_changed("moved", 8002))
        assert await endpoints.endpoint("moved") == "http://127.0.0.1:8002"
        assert await endpoints.endpoint("stays") == "http://127.0.0.1:8001"  # its copy
        assert deployer.requests == {"moved": 2, "stays": 1}
        news.reconnected()
        assert await endpoints.endpoint("stays") == "http://127.0.0.1:8002"
        assert deployer.requests == {"moved": 2, "stays": 2}
    finally:
        await config.close()
        await endpoints.close()
        await egress.aclose()


async def test_config_fetches_in_flight_are_shared_and_a_failure_is_not_kept() -> None:
    installer = Installer()
    config = installer.client()
    try:
        installer.gate.clear()
        installer.fail = True
        waiting = [asyncio.create_task(config.effective_config("ws", "cfg")) for _ in range(10)]
        await asyncio.sleep(0.05)
        installer.gate.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert installer.requests == 1
        assert all(isinstance(result, ComponentError) and result.retryable for result in results)
        installer.fail = False
        assert await config.effective_config("ws", "cfg") == {"greeting": "v1"}
        assert installer.requests == 2  # the failure was not the copy
    finally:
        await config.close()


def test_a_failing_handler_leaves_the_other_handlers_their_news() -> None:
    news = ReplicaNews()
    heard: list[str] = []

    def broken(_event: CloudEvent) -> None:
        raise ValueError("a bug")

    news.on(EGRESS_CHANGED, broken)
    news.on(EGRESS_CHANGED, lambda event: heard.append(event.id))
    event = news_of(EGRESS_CHANGED, EgressChanged(workspace="a"))
    news.hear(event)
    assert heard == [event.id]


async def test_the_messages_that_miss_a_deployments_endpoint_together_ask_the_deployer_once() -> (
    None
):
    deployer = Deployer()
    endpoints = deployer.client()
    try:
        deployer.gate.clear()
        asking = [asyncio.create_task(endpoints.endpoint("busy")) for _ in range(20)]
        await asyncio.sleep(0.05)
        deployer.gate.set()
        assert await asyncio.gather(*asking) == ["http://127.0.0.1:8001"] * 20
        assert deployer.requests == {"busy": 1}
        assert await endpoints.endpoint("busy") == "http://127.0.0.1:8001"  # kept
        assert deployer.requests == {"busy": 1}
    finally:
        await endpoints.close()
