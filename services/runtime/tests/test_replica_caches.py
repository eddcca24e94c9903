"""Every runtime replica drops its cached copies on the change's event, long before they expire.

Two runtime apps in this process, on one schema and one vhost, as two replicas are; each keeps
its copies (a flow, a workspace's program and egress allow-list, an installation's effective
config) for five minutes. A change made through replica one must reach replica two within
seconds: through the event the change records (the runtime's own, or the installer's), heard on
each process's own queue (replica_news.py). Without it replica two keeps the old copy until it
expires, and each test below times out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from runtime_env import module_archive, registry_and_installer, running_flow
from sqlalchemy import select, update

from modyard.common.auth import Role
from modyard.common.bus.envelope import new_event
from modyard.common.db.messaging_tables import outbox
from modyard.contracts.events import payload
from modyard.contracts.events.runtime import (
    AUTOMATIONS_CHANGED,
    EGRESS_CHANGED,
    FLOW_CHANGED,
    AutomationsChanged,
    EgressChanged,
    FlowChanged,
)
from modyard.runtime import changes
from modyard.runtime.app import create_app
from modyard.runtime.context import SLOT, RuntimeContext
from modyard.runtime.egress.gate import RuntimeEgress
from modyard.runtime.egress.models import WorkspaceEgress
from modyard.runtime.flows.events import heard_event, listen_problem
from modyard.runtime.models import Flow
from modyard.runtime.replica_news import ReplicaNews
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.broker_connections import close_connections_named
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

#: Every copy's TTL here: far longer than any wait below, so only the event can drop a copy.
COPY_SECONDS = 300.0
#: How long a replica may take to hear a change (the outbox relay, then the broker).
HEARD_WITHIN = 15.0
WS = "replicas"
MODULE = "replica-config"


@dataclass
class Replica:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def context(self) -> RuntimeContext:
        return SLOT.of(self.app)

    @property
    def egress(self) -> RuntimeEgress:
        egress = self.context.egress
        assert egress is not None
        return egress


@dataclass
class Env:
    one: Replica
    two: Replica
    operator: dict[str, str]
    installer_url: str

    @property
    def replicas(self) -> tuple[Replica, Replica]:
        return self.one, self.two


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "replicas") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            installer_url=installer.url,
            db_schema="runtime_replicas",
            flow_cache_seconds=COPY_SECONDS,
            program_cache_seconds=COPY_SECONDS,
            egress_cache_seconds=COPY_SECONDS,
            config_cache_seconds=COPY_SECONDS,
        )
        operator = auth_headers(settings, Role.operator)
        async with httpx.AsyncClient(headers=operator, timeout=30) as outside:
            document = {"name": MODULE, "version": "1.0.0", "kind": "connector", "components": []}
            published = await outside.post(
                f"{registry.url}/v1/modules",
                content=module_archive(document),
                headers={"content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            workspaces = f"{installer.url}/v1/workspaces"
            created = await outside.post(workspaces, json={"slug": WS, "name": WS})
            assert created.status_code == 201, created.text
            installed = await outside.post(
                f"{workspaces}/{WS}/installations",
                json={"module": MODULE, "slug": "cfg", "config": {"greeting": "v1"}},
            )
            assert installed.status_code == 201, installed.text
        one_app, two_app = create_app(settings), create_app(settings)
        async with in_process(one_app) as one, in_process(two_app) as two:
            yield Env(Replica(one_app, one), Replica(two_app, two), operator, installer.url)


async def test_a_flow_stopped_through_one_replica_stops_in_the_other_at_once(env: Env) -> None:
    definition = {
        "nodes": {"hook": {"component": "core.webhook"}, "sink": {"component": "core.log"}},
        "connections": [{"from": "hook", "to": "sink"}],
    }
    flow_id = await running_flow(env.one.client, env.operator, WS, definition, name="replica")
    key = uuid.UUID(flow_id)
    for replica in env.replicas:  # each worker now holds the running flow
        flow = await replica.context.flows.get(key)
        assert flow is not None
        assert flow.status == "running"

    stopped = await env.one.client.post(
        f"/v1/workspaces/{WS}/flows/{flow_id}/stop", headers=env.operator
    )
    assert stopped.status_code == 200, stopped.text
    # The replica that served the stop dropped its copy once the stop committed.
    here = await env.one.context.flows.get(key)
    assert here is not None
    assert here.status == "stopped"

    async def stopped_in_two() -> bool:
        flow = await env.two.context.flows.get(key)
        return flow is not None and flow.status == "stopped"

    await eventually(stopped_in_two, timeout=HEARD_WITHIN)

    deleted = await env.two.client.delete(
        f"/v1/workspaces/{WS}/flows/{flow_id}", headers=env.operator
    )
    assert deleted.status_code == 204, deleted.text

    async def gone_in_one() -> bool:
        return await env.one.context.flows.get(key) is None

    await eventually(gone_in_one, timeout=HEARD_WITHIN)


async def test_an_automation_changed_through_one_replica_runs_changed_in_the_other(
    env: Env,
) -> None:
    async def save(replica: Replica, output: str) -> None:
        saved = await replica.client.put(
            f"/v1/workspaces/{WS}/automations/probe",
            json={"output": output, "do": []},
            headers=env.operator,
        )
        assert saved.status_code in (200, 201), saved.text

    async def output(replica: Replica) -> Any:
        ran = await replica.client.post(
            f"/v1/workspaces/{WS}/automations/probe/run", json={}, headers=env.operator
        )
        assert ran.status_code == 200, ran.text
        return ran.json()["output"]

    await save(env.one, "v1")
    for replica in env.replicas:  # each now holds the workspace's program
        assert await output(replica) == "v1"
    await save(env.one, "v2")
    assert await output(env.one) == "v2"  # its own copy went when the save committed

    async def changed_in_two() -> bool:
        return await output(env.two) == "v2"

    await eventually(changed_in_two, timeout=HEARD_WITHIN)


async def test_an_allow_list_put_through_one_replica_reaches_the_other_for_its_workspace_only(
    env: Env,
) -> None:
    changed, other = "replicas-a", "replicas-b"
    for replica in env.replicas:  # each holds both workspaces' (empty) lists
        assert await replica.egress.allowance(changed) is None
        assert await replica.egress.allowance(other) is None
    # The other workspace's row changes behind the API's back (no event): a replica that
    # dropped every copy on the first workspace's news would now see it.
    database = env.one.app.state.database
    async with database.transaction() as session:
        session.add(
            WorkspaceEgress(workspace=other, allow_cidrs=["10.9.0.0/16"], updated_by="test")
        )

    put = await env.one.client.put(
        f"/v1/workspaces/{changed}/egress",
        json={"allow_hosts": ["*.corp.example"]},
        headers=env.operator,
    )
    assert put.status_code == 200, put.text
    assert await env.one.egress.allowance(changed) is not None

    async def reached_two() -> bool:
        return await env.two.egress.allowance(changed) is not None

    await eventually(reached_two, timeout=HEARD_WITHIN)
    allowed = await env.two.egress.allowance(changed)
    assert allowed is not None
    assert allowed.hosts
    # The other workspace's copy is the one each replica held.
    for replica in env.replicas:
        assert await replica.egress.allowance(other) is None


async def test_an_installation_configured_at_the_installer_reaches_every_replica(
    env: Env,
) -> None:
    for replica in env.replicas:  # each holds the installation's config
        config = await replica.context.installer.effective_config(WS, "cfg")
        assert config["greeting"] == "v1"

    async def configure(greeting: str) -> None:
        async with httpx.AsyncClient(headers=env.operator, timeout=30) as outside:
            patched = await outside.patch(
                f"{env.installer_url}/v1/workspaces/{WS}/installations/cfg/config",
                json={"config": {"greeting": greeting}},
            )
        assert patched.status_code == 200, patched.text

    await configure("v2")
    for replica in env.replicas:

        async def configured(replica: Replica = replica) -> bool:
            config = await replica.context.installer.effective_config(WS, "cfg")
            return bool(config["greeting"] == "v2")

        await eventually(configured, timeout=HEARD_WITHIN)


async def test_the_serving_replica_drops_its_copy_after_the_commit_and_never_on_a_rollback(
    env: Env,
) -> None:
    # Dropped before the commit (as the flow endpoints once did), a read between the drop and
    # the commit would see the old row and keep it for the whole TTL.
    database = env.one.app.state.database
    dropped: list[str] = []

    def hearing(said: str) -> ReplicaNews:
        news = ReplicaNews()
        news.on(FLOW_CHANGED, lambda _event: dropped.append(said))
        return news

    flow_id = uuid.uuid4()
    async with database.transaction() as session:
        await changes.flow_changed(session, WS, flow_id, hearing("committed"))
        assert dropped == []
    assert dropped == ["committed"]

    class Refused(Exception):
        pass

    rolled_back = uuid.uuid4()

    async def refused_change() -> None:
        async with database.transaction() as session:
            await changes.flow_changed(session, WS, rolled_back, hearing("no"))
            raise Refused

    with pytest.raises(Refused):
        await refused_change()
    assert dropped == ["committed"]
    async with database.transaction() as session:  # nor is its event ever sent
        subjects = set(await session.scalars(select(outbox.c.envelope["subject"].astext)))
    assert str(flow_id) in subjects
    assert str(rolled_back) not in subjects


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (FLOW_CHANGED, FlowChanged(workspace=WS, flow_id=str(uuid.uuid4()))),
        (AUTOMATIONS_CHANGED, AutomationsChanged(workspace=WS)),
        (EGRESS_CHANGED, EgressChanged(workspace=WS)),
    ],
)
def test_the_news_is_the_platforms_own_no_tenant_flow_hears_it(kind: str, data: Any) -> None:
    # The runtime's shared queue binds every type for core.event triggers, and this news names
    # a workspace: it must still not reach the workspace's flows.
    event = new_event(source=changes.SOURCE, type=kind, data=payload(data))
    assert heard_event(event) is None
    assert listen_problem(kind) is not None


async def test_a_replica_that_lost_its_broker_connection_drops_every_copy(
    env: Env, infra: IsolatedInfra
) -> None:
    created = await env.one.client.post(
        f"/v1/workspaces/{WS}/flows",
        json={"name": "lost", "definition": {"nodes": {"hook": {"component": "core.webhook"}}}},
        headers=env.operator,
    )
    assert created.status_code == 201, created.text
    key = uuid.UUID(created.json()["id"])

    async def set_status(status: str) -> None:
        # Behind the API's back: no event, as if its news went while the queue was gone (and
        # no start's event still on its way to drop a copy this test wants held).
        async with env.one.app.state.database.transaction() as session:
            await session.execute(update(Flow).where(Flow.id == key).values(status=status))

    await set_status("running")
    for replica in env.replicas:
        flow = await replica.context.flows.get(key)
        assert flow is not None
        assert flow.status == "running"
    await set_status("stopped")
    held = await env.two.context.flows.get(key)
    assert held is not None
    assert held.status == "running"  # the copy, for its five minutes

    # Both replicas' connections: closing only the first listed would leave the other replica
    # connected, holding its copy.
    await close_connections_named(
        infra, "modyard-runtime", count=len(env.replicas), timeout=HEARD_WITHIN
    )

    async def dropped_in_both() -> bool:
        flows = [await replica.context.flows.get(key) for replica in env.replicas]
        return all(flow is not None and flow.status == "stopped" for flow in flows)

    await eventually(dropped_in_both, timeout=2 * HEARD_WITHIN)
    for replica in env.replicas:  # back on the bus for whatever runs next
        await eventually(lambda replica=replica: replica.app.state.bus.is_connected)
