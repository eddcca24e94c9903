"""Module workers' broker isolation (issue 17, hole 6), live: registry and installer processes, the
runtime in process, two workspaces with the same module installed, and the workers' own broker
users on the real RabbitMQ.

- A's requests (with A's configuration) go to A's installation's queue, which only A's worker user
  may read: B's worker credentials are refused (ACCESS_REFUSED) and take nothing from it.
- A reply is taken only from A's worker user: a reply with A's correlation id published by B's
  worker user is dropped and does not complete A's execution.
- Credentials are issued to the installation's workspace (or an operator), and rotate.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import httpx
import pytest
from runtime_env import module_archive, node_log_entries, registry_and_installer, running_flow

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.worker_access.service import REPLIES_EXCHANGE
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

A, B = "iso-a", "iso-b"
MODULE = "iso-echo"


def module_zip() -> bytes:
    document = {
        "name": MODULE,
        "version": "1.0.0",
        "kind": "connector",
        "components": [
            {
                "name": "Echo",
                "role": "action",
                "executor": {"type": "amqp"},
                "out_ports": [{"name": "out"}],
            }
        ],
    }
    return module_archive(document)


class Env:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RuntimeSettings) -> None:
        self.client = client
        self.app = app
        self.operator = auth_headers(settings, Role.operator)
        self.member = {
            workspace: auth_headers(settings, Role.user, workspaces=(workspace,))
            for workspace in (A, B)
        }

    async def issue(
        self, workspace: str, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/workspaces/{workspace}/installations/echo/worker-credentials",
            headers=headers or self.member[workspace],
            json=body or None,
        )

    async def flow(self, workspace: str) -> str:
        definition = {
            "nodes": {
                "hook": {"component": "core.webhook"},
                "echo": {"component": "echo.Echo"},
                "sink": {"component": "core.log"},
            },
            "connections": [{"from": "hook", "to": "echo"}, {"from": "echo", "to": "sink"}],
        }
        return await running_flow(self.client, self.operator, workspace, definition, name="iso")

    async def logs(self, flow_id: str) -> list[Any]:
        return await node_log_entries(self.app, flow_id)


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "isolation") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            installer_url=installer.url,
            db_schema="runtime_isolation",
            component_timeout_seconds=30,
        )
        app = create_app(settings)
        async with in_process(app) as client, httpx.AsyncClient(timeout=30) as outside:
            environment = Env(client, app, settings)
            operator = environment.operator
            published = await outside.post(
                f"{registry.url}/v1/modules",
                content=module_zip(),
                headers={**operator, "content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            for workspace in (A, B):
                base = f"{installer.url}/v1/workspaces"
                created = await outside.post(
                    base, json={"slug": workspace, "name": workspace}, headers=operator
                )
                assert created.status_code == 201, created.text
                installed = await outside.post(
                    f"{base}/{workspace}/installations",
                    json={"module": MODULE, "slug": "echo", "config": {}},
                    headers=operator,
                )
                assert installed.status_code == 201, installed.text
                granted = await outside.post(
                    f"{base}/{workspace}/installations/echo/acl/grant-users", headers=operator
                )
                assert granted.status_code == 201, granted.text

            async def both_known() -> bool:
                answers = [await environment.issue(w) for w in (A, B)]
                return all(answer.status_code == 201 for answer in answers)

            await eventually(both_known)
            yield environment


async def credentials(env: Env, workspace: str) -> dict[str, Any]:
    issued = await env.issue(workspace)
    assert issued.status_code == 201, issued.text
    found: dict[str, Any] = issued.json()
    return found


async def test_a_workspace_gets_its_own_workers_credentials_and_not_anothers(env: Env) -> None:
    mine = await credentials(env, A)
    theirs = await credentials(env, B)
    assert mine["queue"] != theirs["queue"]
    assert mine["username"] != theirs["username"]
    assert mine["reply_exchange"] == REPLIES_EXCHANGE

    refused = await env.issue(A, headers=env.member[B])
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert A in refused.json()["detail"]
    # Nothing changed: A's password was not rotated by B's attempt.
    connection = await aio_pika.connect(mine["amqp_url"])
    await connection.close()

    missing = await env.issue(A, headers=env.operator)
    assert missing.status_code == 201  # operators may issue any workspace's
    absent = await env.client.post(
        f"/v1/workspaces/{A}/installations/nothing-here/worker-credentials",
        headers=env.member[A],
    )
    assert absent.status_code == 404
    assert "install it first" in absent.json()["detail"]


async def test_another_workspaces_worker_cannot_consume_or_publish_to_a_workers_queue(
    env: Env,
) -> None:
    mine = await credentials(env, A)
    theirs = await credentials(env, B)
    flow_id = await env.flow(A)
    hooked = await env.client.post(f"/v1/hooks/{A}/{flow_id}/hook", json={"n": 1})
    assert hooked.status_code == 202, hooked.text

    owner = await aio_pika.connect(mine["amqp_url"])
    intruder = await aio_pika.connect(theirs["amqp_url"])
    try:
        owner_channel = await owner.channel()

        async def waiting() -> bool:
            queue = await owner_channel.declare_queue(mine["queue"], passive=True)
            return bool(queue.declaration_result.message_count == 1)

        await eventually(waiting)
        channel = await intruder.channel()
        queue = await channel.get_queue(mine["queue"], ensure=False)

        async def ignore(_message: object) -> None:
            return None

        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await queue.consume(ignore, no_ack=True)
        channel = await intruder.channel()
        queue = await channel.get_queue(mine["queue"], ensure=False)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await queue.get(no_ack=True)
        # Nor can it put a request of its own on A's queue (the default exchange is not its).
        channel = await intruder.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await channel.default_exchange.publish(
                aio_pika.Message(b'{"component": "Echo"}'), routing_key=mine["queue"]
            )
        # Nothing was taken: A's request still waits for A's worker.
        queue = await owner_channel.declare_queue(mine["queue"], passive=True)
        assert queue.declaration_result.message_count == 1
        request = await queue.get(no_ack=True)
        assert json.loads(request.body)["workspace"] == A
    finally:
        await intruder.close()
        await owner.close()


async def test_a_reply_from_another_workers_user_does_not_complete_the_execution(
    env: Env,
) -> None:
    mine = await credentials(env, A)
    theirs = await credentials(env, B)
    flow_id = await env.flow(A)
    owner = await aio_pika.connect(mine["amqp_url"])
    intruder = await aio_pika.connect(theirs["amqp_url"])
    try:
        owner_channel = await owner.channel(publisher_confirms=True)
        queue = await owner_channel.declare_queue(mine["queue"], passive=True)
        requests: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(requests.put, no_ack=True)
        hooked = await env.client.post(f"/v1/hooks/{A}/{flow_id}/hook", json={"n": 2})
        assert hooked.status_code == 202, hooked.text
        request = await asyncio.wait_for(requests.get(), 30)
        assert request.reply_to
        assert request.correlation_id

        # B's worker user answers A's request with A's correlation id (it may publish to the
        # replies exchange, so this is accepted by the broker) ...
        intruder_channel = await intruder.channel(publisher_confirms=True)
        replies = await intruder_channel.get_exchange(REPLIES_EXCHANGE, ensure=False)
        forged = json.dumps({"outputs": {"out": [{"forged": True}]}}).encode()
        for user_id in (theirs["username"], None):
            await replies.publish(
                aio_pika.Message(forged, correlation_id=request.correlation_id, user_id=user_id),
                routing_key=request.reply_to,
            )
        # ... and cannot claim to be A's worker: RabbitMQ checks user_id against the connection.
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await replies.publish(
                aio_pika.Message(
                    forged, correlation_id=request.correlation_id, user_id=mine["username"]
                ),
                routing_key=request.reply_to,
            )
        # Then A's worker answers; the forged replies were queued before it, so the runtime has
        # read (and dropped) them when this one completes the execution.
        owner_replies = await owner_channel.get_exchange(REPLIES_EXCHANGE, ensure=False)
        genuine = json.dumps({"outputs": {"out": [{"genuine": True}]}}).encode()
        await owner_replies.publish(
            aio_pika.Message(
                genuine, correlation_id=request.correlation_id, user_id=mine["username"]
            ),
            routing_key=request.reply_to,
        )

        async def logged() -> bool:
            return len(await env.logs(flow_id)) >= 1

        await eventually(logged)
        assert await env.logs(flow_id) == [{"genuine": True}]
    finally:
        await intruder.close()
        await owner.close()


async def test_rotating_credentials_shuts_out_the_old_password(
    env: Env, infra: IsolatedInfra
) -> None:
    old = await credentials(env, B)
    connection = await aio_pika.connect(old["amqp_url"])
    closed = asyncio.Event()
    connection.close_callbacks.add(lambda *_: closed.set())
    management = httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
    )

    async def listed() -> bool:
        # The management API lists a connection once its statistics are collected (~5 s).
        found = (await management.get(f"/api/vhosts/{infra.vhost}/connections")).json()
        return any(item.get("user") == old["username"] for item in found)

    await eventually(listed)
    await management.aclose()
    rotated = await env.issue(B, close_connections=True)
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["closed_connections"] >= 1
    await asyncio.wait_for(closed.wait(), 30)
    with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(old["amqp_url"])
    fresh = await aio_pika.connect(rotated.json()["amqp_url"])
    await fresh.close()
