"""Flows and tenancy, live: registry and installer processes, the runtime in process, the real
broker, two workspaces (``ten-a``, ``ten-b``) and a user token for each.

- a flow's owner is the caller; naming someone else is an operator's act, recorded (hole 3);
- ``core.event`` hears only its own workspace's events and the listed platform events of its
  workspace, ``core.emit`` cannot pass for the platform, emit → event loops stop (hole 1).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
from runtime_env import external_request, module_archive, node_log_entries, registry_and_installer
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.engine.topology import WORK_DEAD_LETTER_QUEUE
from modyard.runtime.models import Flow
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

A, B, LOOP, FLOOD = "ten-a", "ten-b", "ten-loop", "ten-flood"
ALICE, BOB = "alice@tenant-a.example", "bob@tenant-a.example"
MAX_DEPTH, BURST = 4, 6


def module_zip(name: str) -> bytes:
    document = {
        "name": name,
        "version": "1.0.0",
        "kind": "connector",
        "components": [{"name": "Echo", "role": "action", "executor": {"type": "amqp"}}],
    }
    return module_archive(document)


class Env:
    def __init__(
        self, client: httpx.AsyncClient, app: Any, settings: RuntimeSettings, urls: dict[str, str]
    ) -> None:
        self.client = client
        self.app = app
        self.settings = settings
        self.urls = urls
        self.operator = auth_headers(settings, Role.operator)

    def user(self, subject: str, workspace: str) -> dict[str, str]:
        return auth_headers(self.settings, Role.user, workspaces=(workspace,), subject=subject)

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await external_request(self.operator, method, url, **kwargs)

    async def flow(
        self,
        ws: str,
        nodes: dict[str, Any],
        connections: list[dict[str, str]],
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/workspaces/{ws}/flows",
            json={
                "name": f"flow-{uuid.uuid4().hex[:6]}",
                "definition": {"nodes": nodes, "connections": connections},
                **body,
            },
            headers=headers or self.operator,
        )

    async def running(
        self, ws: str, nodes: dict[str, Any], connections: list[dict[str, str]]
    ) -> str:
        created = await self.flow(ws, nodes, connections)
        assert created.status_code == 201, created.text
        flow_id = str(created.json()["id"])
        started = await self.start(ws, flow_id)
        assert started.status_code == 200, started.text
        return flow_id

    async def start(self, ws: str, flow_id: str, headers: dict[str, str] | None = None) -> Any:
        return await self.client.post(
            f"/v1/workspaces/{ws}/flows/{flow_id}/start", headers=headers or self.operator
        )

    async def hook(self, ws: str, flow_id: str, payload: Any) -> None:
        response = await self.client.post(f"/v1/hooks/{ws}/{flow_id}/hook", json=payload)
        assert response.status_code == 202, response.text

    async def logs(self, flow_id: str) -> list[Any]:
        return await node_log_entries(self.app, flow_id)

    async def flow_count(self, ws: str) -> int:
        async with self.app.state.database.transaction() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(Flow).where(Flow.workspace == ws)
                )
                or 0
            )

    async def unprocessed(self, flow_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/unprocessed-messages", params={"flow": flow_id}, headers=self.operator
        )
        return list(response.json()["items"])


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "tenancy") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            db_schema="runtime_tenancy",
            installer_url=installer.url,
            event_max_depth=MAX_DEPTH,
            event_burst=BURST,
            # Refills one event in ~17 minutes: the burst is all a workspace gets in a test.
            event_rate_per_second=0.001,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            env = Env(client, app, settings, {"registry": registry.url, "installer": installer.url})
            for ws in (A, B, LOOP, FLOOD):
                created = await env.external(
                    "POST", f"{installer.url}/v1/workspaces", json={"slug": ws, "name": ws}
                )
                assert created.status_code == 201, created.text
            published = await env.external(
                "POST",
                f"{registry.url}/v1/modules",
                content=module_zip("vault-mod"),
                headers={**env.operator, "content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            yield env


async def install(env: Env, ws: str, slug: str) -> None:
    installed = await env.external(
        "POST",
        f"{env.urls['installer']}/v1/workspaces/{ws}/installations",
        json={"module": "vault-mod", "slug": slug},
    )
    assert installed.status_code == 201, installed.text


# --- hole 3: the flow owner ------------------------------------------------------------------


async def test_a_member_cannot_borrow_another_users_acl_rule_by_naming_the_owner(
    env: Env,
) -> None:
    await install(env, A, "vault")
    rule = await env.external(
        "POST",
        f"{env.urls['installer']}/v1/acl/components",
        json={"user": ALICE, "resource": "vault-mod.*", "action": "use"},
    )
    assert rule.status_code == 201, rule.text
    nodes = {"v": {"component": "vault.Echo"}}

    async def alice_may_use_it() -> bool:
        # The runtime learns the installation from the installer's event.
        created = await env.flow(A, nodes, [], owner=ALICE)
        flow_id = created.json()["id"]
        response = await env.client.get(
            f"/v1/workspaces/{A}/flows/{flow_id}/validation", headers=env.operator
        )
        return bool(response.json()["valid"])

    await eventually(alice_may_use_it)
    bob = env.user(BOB, A)
    before = await env.flow_count(A)

    borrowed = await env.flow(A, nodes, [], headers=bob, owner=ALICE)
    assert borrowed.status_code == 403, borrowed.text
    problem = borrowed.json()
    assert problem["type"].endswith("/flow-owner-not-yours")
    assert "owner" in problem["detail"]
    assert "operator" in problem["detail"]
    assert await env.flow_count(A) == before  # nothing was created

    # Bob's own flow is his: his own rules are checked, and he has none.
    own = await env.flow(A, nodes, [], headers=bob)
    assert own.status_code == 201, own.text
    assert (own.json()["owner"], own.json()["created_by"]) == (BOB, BOB)
    assert own.json()["owner_set_by"] is None
    refused = await env.start(A, own.json()["id"], headers=bob)
    assert refused.status_code == 422, refused.text
    assert BOB in refused.json()["errors"][0]["detail"]

    # Alice's flow cannot be taken over either: Bob's change makes it his, or he may not start it.
    alices = await env.flow(A, nodes, [], headers=env.user(ALICE, A))
    assert alices.status_code == 201
    assert alices.json()["owner"] == ALICE
    alice_flow = alices.json()["id"]
    started_by_bob = await env.start(A, alice_flow, headers=bob)
    assert started_by_bob.status_code == 422, started_by_bob.text
    assert "You (starting the flow)" in started_by_bob.json()["errors"][0]["detail"]
    changed = await env.client.put(
        f"/v1/workspaces/{A}/flows/{alice_flow}",
        json={"name": "taken", "definition": {"nodes": nodes, "connections": []}},
        headers=bob,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["owner"] == BOB
    assert (await env.start(A, alice_flow, headers=bob)).status_code == 422
    listed = await env.client.get(f"/v1/workspaces/{A}/flows", headers=env.operator)
    assert all(item["status"] == "stopped" for item in listed.json()["items"])

    # A token of the other workspace reaches nothing of ten-a.
    other = await env.flow(A, nodes, [], headers=env.user(ALICE, B), owner=ALICE)
    assert other.status_code == 403

    # An operator may name the owner; that is recorded.
    named = await env.flow(A, nodes, [], owner=ALICE)
    assert named.status_code == 201
    assert (named.json()["owner"], named.json()["owner_set_by"]) == (ALICE, "test")
    assert (await env.start(A, named.json()["id"])).status_code == 200
    await env.client.post(
        f"/v1/workspaces/{A}/flows/{named.json()['id']}/stop", headers=env.operator
    )


# --- hole 1: events stay in their workspace ----------------------------------------------------


def listener(kind: str, message: str = "{{ payload.data }}") -> tuple[dict[str, Any], list[Any]]:
    return (
        {
            "on": {"component": "core.event", "properties": {"type": kind}},
            "sink": {"component": "core.log", "properties": {"message": message}},
        },
        [{"from": "on", "to": "sink"}],
    )


def emitter(kind: str) -> tuple[dict[str, Any], list[Any]]:
    return (
        {
            "hook": {"component": "core.webhook"},
            "emit": {
                "component": "core.emit",
                "properties": {"type": kind, "data": "{{ payload }}"},
            },
        },
        [{"from": "hook", "to": "emit"}],
    )


async def test_a_flow_event_reaches_only_the_flows_of_its_workspace(env: Env) -> None:
    kind = "acme.order.created"
    heard_in_a = await env.running(A, *listener(kind))
    heard_in_b = await env.running(B, *listener(kind))
    send_from_a = await env.running(A, *emitter(kind))
    send_from_b = await env.running(B, *emitter(kind))

    await env.hook(A, send_from_a, {"order": "from-a"})

    async def a_heard() -> bool:
        return await env.logs(heard_in_a) == [{"order": "from-a"}]

    await eventually(a_heard)
    # ten-b then sends its own: its listener hears that one only.
    await env.hook(B, send_from_b, {"order": "from-b"})

    async def b_heard() -> bool:
        return len(await env.logs(heard_in_b)) >= 1

    await eventually(b_heard)
    assert await env.logs(heard_in_b) == [{"order": "from-b"}]
    assert await env.logs(heard_in_a) == [{"order": "from-a"}]


async def test_platform_events_are_a_listed_few_and_of_the_flows_own_workspace(env: Env) -> None:
    # Not on the list: refused at start, naming the list; nothing runs.
    for kind in ("modyard.registry.module.published", "modyard.runtime.flow.emitted"):
        created = await env.flow(B, *listener(kind))
        started = await env.start(B, created.json()["id"])
        assert started.status_code == 422, started.text
        error = started.json()["errors"][0]
        assert error["pointer"] == "/definition/nodes/on/properties/type"
        assert "modyard.installer.installation.created" in error["detail"]
    # A flow cannot pass its events off as the platform's.
    spoof = await env.flow(B, *emitter("modyard.installer.installation.created"))
    refused = await env.start(B, spoof.json()["id"])
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["pointer"] == "/definition/nodes/emit/properties/type"

    installed = "modyard.installer.installation.created"
    watch_b = await env.running(B, *listener(installed, "{{ payload.data }}"))
    watch_a = await env.running(A, *listener(installed, "{{ payload.data }}"))
    await install(env, A, "other-a")

    async def a_saw_it() -> bool:
        return any(entry.get("slug") == "other-a" for entry in await env.logs(watch_a))

    await eventually(a_saw_it)
    await install(env, B, "mine-b")

    async def b_saw_its_own() -> bool:
        return len(await env.logs(watch_b)) >= 1

    await eventually(b_saw_its_own)
    seen_by_b = await env.logs(watch_b)
    assert [entry["slug"] for entry in seen_by_b] == ["mine-b"]
    # The listed fields only: no component specs or configuration of the installation.
    assert set(seen_by_b[0]) <= {"workspace", "slug", "module", "version", "pinned", "kind"}
    assert seen_by_b[0]["workspace"] == B


async def test_an_emit_loop_stops_at_the_depth_limit_with_a_non_retryable_failure(
    env: Env,
) -> None:
    loop = await env.running(
        LOOP,
        {
            "hook": {"component": "core.webhook"},
            "on": {"component": "core.event", "properties": {"type": "loop.ping"}},
            "sink": {"component": "core.log", "properties": {"message": "ping"}},
            "emit": {"component": "core.emit", "properties": {"type": "loop.ping", "data": 1}},
        },
        [
            {"from": "hook", "to": "emit"},
            {"from": "on", "to": "sink"},
            {"from": "on", "to": "emit"},
        ],
    )
    await env.hook(LOOP, loop, {})

    async def stopped() -> bool:
        return len(await env.unprocessed(loop)) == 1

    await eventually(stopped)
    [item] = await env.unprocessed(loop)
    assert item["node_id"] == "emit"
    assert item["reason"] == "not_retryable"
    assert "event chain too deep" in item["errors"][-1]["message"]
    # Exactly MAX_DEPTH events were heard before the chain was refused.
    assert await env.logs(loop) == ["ping"] * MAX_DEPTH


async def test_a_workspace_emitting_beyond_its_rate_is_refused_and_others_are_not(
    env: Env,
) -> None:
    kind = "flood.tick"
    flood = await env.running(FLOOD, *emitter(kind))
    heard = await env.running(FLOOD, *listener(kind))
    for index in range(BURST + 2):
        await env.hook(FLOOD, flood, {"n": index})

    async def settled() -> bool:
        return len(await env.logs(heard)) == BURST and len(await env.unprocessed(flood)) == 2

    await eventually(settled)
    for item in await env.unprocessed(flood):
        assert item["reason"] == "not_retryable"
        assert "faster than" in item["errors"][-1]["message"]
    # Another workspace's bucket is its own.
    other = await env.running(B, *emitter(kind))
    other_heard = await env.running(B, *listener(kind))
    await env.hook(B, other, {"n": "b"})

    async def b_heard() -> bool:
        return await env.logs(other_heard) == [{"n": "b"}]

    await eventually(b_heard)
    assert await env.unprocessed(other) == []


# --- one workspace's unstorable data and another's executions ---------------------------------


def logger_flow() -> tuple[dict[str, Any], list[dict[str, str]]]:
    return (
        {"hook": {"component": "core.webhook"}, "log": {"component": "core.log"}},
        [{"from": "hook", "to": "log"}],
    )


async def test_text_postgresql_cannot_store_fails_its_own_execution_and_no_other_workspaces(
    env: Env, infra: IsolatedInfra
) -> None:
    # A NUL character is valid JSON (\u0000) but PostgreSQL cannot store it in jsonb. The
    # executions in flight are recorded in one statement: before, one workspace's payload with a
    # NUL failed the recording of every execution beside it, other workspaces' too, and left them
    # all unacknowledged on the worker (the statement's error was not "the database is away").
    poisoned = await env.running(A, *logger_flow())
    innocent = await env.running(B, *logger_flow())
    sent = [{"n": n} for n in range(40)]
    for payload in sent[:20]:
        await env.hook(B, innocent, payload)
    await env.hook(A, poisoned, {"text": "before\u0000after"})
    for payload in sent[20:]:
        await env.hook(B, innocent, payload)

    async def all_logged() -> bool:
        return len(await env.logs(innocent)) == len(sent)

    await eventually(all_logged, timeout=30)
    assert sorted(entry["n"] for entry in await env.logs(innocent)) == list(range(40))

    # The poisoned message cannot be kept with the unprocessed ones (its payload is the text
    # PostgreSQL refuses): the broker keeps it, as it came, with why, and nothing of it ran on.
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(WORK_DEAD_LETTER_QUEUE, passive=True)
        found: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def dead_lettered() -> bool:
            while (message := await queue.get(fail=False)) is not None:
                await message.ack()
                if json.loads(message.body)["flow_id"] == poisoned:
                    found.append(message)
            return bool(found)

        await eventually(dead_lettered, timeout=30)
    [message] = found
    assert json.loads(message.body)["payload"] == {"text": "before\u0000after"}
    reason = str(message.headers["x-modyard-rejected-reason"])
    assert reason.startswith("not_retryable: ")
    assert "cannot store" in reason
    assert await env.logs(poisoned) == []
    assert await env.unprocessed(poisoned) == []
