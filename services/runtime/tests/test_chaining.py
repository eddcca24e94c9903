"""Core nodes chained in process: what goes through the broker, and what a failure does.

A queue of the test's own, bound to the work exchange with the work queue's routing key, gets a
copy of every work message published: it shows which nodes were handed to the broker and which
ran in process after their parent (engine/worker.py, "Chaining")."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
from runtime_env import node_log_entries, registry_and_installer, running_flow
from sqlalchemy import text

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.topology import WORK_EXCHANGE, WORK_ROUTING_KEY
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

WS = "chaining"
CHAIN_LIMIT = 2


class Published:
    """Copies of the work messages published while the test runs."""

    def __init__(self) -> None:
        self.messages: list[WorkMessage] = []

    def nodes(self, flow_id: str) -> list[str]:
        return [message.node_id for message in self.messages if message.flow_id == flow_id]


class Env:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RuntimeSettings) -> None:
        self.client = client
        self.app = app
        self.operator = auth_headers(settings, Role.operator)

    async def running_flow(self, nodes: dict[str, Any], connections: list[dict[str, str]]) -> str:
        definition = {"nodes": nodes, "connections": connections}
        return await running_flow(self.client, self.operator, WS, definition, name="chain")

    async def hook(self, flow_id: str, payload: Any) -> None:
        response = await self.client.post(f"/v1/hooks/{WS}/{flow_id}/hook", json=payload)
        assert response.status_code == 202, response.text

    async def executed(self, flow_id: str) -> list[str]:
        async with self.app.state.database.transaction() as session:
            rows = await session.scalars(
                text("SELECT node_id FROM node_executions WHERE flow_id = :f ORDER BY node_id"),
                {"f": uuid.UUID(flow_id)},
            )
            return list(rows)


@pytest.fixture(scope="module")
async def published(infra: IsolatedInfra) -> AsyncIterator[Published]:
    seen = Published()
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            WORK_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
        )
        copies = await channel.declare_queue(exclusive=True, auto_delete=True)
        await copies.bind(exchange, routing_key=WORK_ROUTING_KEY)

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.messages.append(WorkMessage.model_validate_json(message.body))

        await copies.consume(keep, no_ack=True)
        yield seen


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra, published: Published) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "chaining") as (_registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            installer_url=installer.url,
            work_chain_limit=CHAIN_LIMIT,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            yield Env(client, app, settings)


def step() -> dict[str, Any]:
    return {"component": "core.transform", "properties": {"mapping": {"n": "{{ payload.n }}"}}}


async def test_core_nodes_run_in_process_up_to_the_chain_limit_then_go_through_the_broker(
    env: Env, published: Published
) -> None:
    names = ["a", "b", "c", "d"]
    nodes = {"hook": {"component": "core.webhook"}, **{name: step() for name in names}}
    nodes["sink"] = {"component": "core.log"}
    path = ["hook", *names, "sink"]
    flow_id = await env.running_flow(
        nodes, [{"from": a, "to": b} for a, b in itertools.pairwise(path)]
    )
    await env.hook(flow_id, {"n": 1})

    async def logged() -> bool:
        return await node_log_entries(env.app, flow_id) == [{"n": 1}]

    await eventually(logged, timeout=30)
    # The webhook published a's message; a's delivery ran b and c in process (the limit, 2),
    # then handed d to the broker; d's delivery ran the last node in process.
    await eventually(lambda: published.nodes(flow_id) == ["a", "d"], timeout=10)
    # Every node ran once, and its run is in the ledger (a redelivery is answered from it).
    assert await env.executed(flow_id) == sorted([*names, "sink"])
    await asyncio.sleep(0.5)  # an observation window for a late duplicate, not a speed check
    assert published.nodes(flow_id) == ["a", "d"]
    assert await node_log_entries(env.app, flow_id) == [{"n": 1}]


async def test_fan_out_shares_one_budget_between_branches(env: Env, published: Published) -> None:
    nodes = {
        "hook": {"component": "core.webhook"},
        "split": step(),
        "left": {"component": "core.log"},
        "middle": {"component": "core.log"},
        "right": {"component": "core.log"},
    }
    connections = [
        {"from": "hook", "to": "split"},
        *({"from": "split", "to": branch} for branch in ("left", "middle", "right")),
    ]
    flow_id = await env.running_flow(nodes, connections)
    await env.hook(flow_id, {"n": 5})

    async def logged() -> bool:
        return len(await node_log_entries(env.app, flow_id)) == 3

    await eventually(logged, timeout=30)
    sent = published.nodes(flow_id)
    # split came from the webhook; two branches ran in process, the third through the broker.
    assert sent[0] == "split"
    assert len(sent) == 2, sent
    assert sent[1] in {"left", "middle", "right"}
    assert await env.executed(flow_id) == ["left", "middle", "right", "split"]


async def test_a_chained_node_that_fails_is_kept_as_unprocessed_with_its_own_node(
    env: Env, published: Published
) -> None:
    nodes = {
        "hook": {"component": "core.webhook"},
        "shape": step(),
        # Not retryable: the expression names a function the language does not have.
        "broken": {
            "component": "core.transform",
            "properties": {"mapping": {"x": "{{ payload.n | no_such_filter }}"}},
        },
        "sink": {"component": "core.log"},
    }
    path = ["hook", "shape", "broken", "sink"]
    flow_id = await env.running_flow(
        nodes, [{"from": a, "to": b} for a, b in itertools.pairwise(path)]
    )
    await env.hook(flow_id, {"n": 3})
    found: list[dict[str, Any]] = []

    async def stored() -> bool:
        listed = await env.client.get(
            "/v1/unprocessed-messages", params={"flow": flow_id}, headers=env.operator
        )
        found[:] = listed.json()["items"]
        return bool(found)

    await eventually(stored, timeout=30)
    (item,) = found
    assert item["node_id"] == "broken"
    assert item["payload"] == {"n": 3}
    # The node before it ran once, and its delivery was acknowledged: nothing came back.
    await asyncio.sleep(0.5)  # an observation window for a redelivery, not a speed check
    assert await env.executed(flow_id) == ["shape"]
    assert published.nodes(flow_id) == ["shape"]
    assert await node_log_entries(env.app, flow_id) == []
    # Leave no dead letter behind: the runtime's unprocessed gauge counts every flow's.
    deleted = await env.client.delete(
        f"/v1/unprocessed-messages/{item['id']}", headers=env.operator
    )
    assert deleted.status_code == 204, deleted.text
