"""Flows running for real: registry and installer processes, the runtime in process, a module
worker on the real broker, and a webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from runtime_env import external_request, module_archive, node_log_entries, registry_and_installer
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.webhooks.signing import verify_signature
from modyard.sdk.cell import CellError, ComponentCall, Worker, WorkerOptions
from modyard.sdk.cell import ModuleWorker as SdkModuleWorker
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.runtime_webhooks import WebhookReceiver
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

WS = "flows"


def module_zip(name: str, version: str) -> bytes:
    document = {
        "name": name,
        "version": version,
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


class ModuleWorker:
    """A module's worker written with the SDK (``modyard.sdk.cell.ModuleWorker``), as a module
    author would, on the real broker: answers its components with the payload echoed, failing
    with the errors queued in ``failures`` first."""

    def __init__(self, url: str, module: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self.failures: list[dict[str, Any]] = []
        self.calls = 0
        self.sdk = SdkModuleWorker(module)
        for component in ("Echo", "Poll"):
            self.sdk.component(component)(self._answer)
        self._worker: Worker | None = None

    async def _answer(self, payload: Any, call: ComponentCall) -> Any:
        self.calls += 1
        if self.failures:
            failure = self.failures.pop(0)
            raise CellError(
                failure["message"], status=failure["status"], retryable=failure["retryable"]
            )
        return {"echo": payload}

    async def start(self) -> None:
        self._worker = self.sdk.worker(WorkerOptions(amqp_url=self.url, queue=self.queue))
        await self._worker.start()

    async def stop(self) -> None:
        if self._worker is not None:
            await self._worker.stop()
            self._worker = None

    async def serve(self, credentials: dict[str, Any]) -> None:
        """Serve another installation (a reinstalled module is a new one, with a new queue)."""
        await self.stop()
        self.url, self.queue = credentials["amqp_url"], credentials["queue"]
        await self.start()


class Env:
    def __init__(
        self,
        client: httpx.AsyncClient,
        app: Any,
        registry: str,
        installer: str,
        settings: RuntimeSettings,
    ) -> None:
        self.client = client
        self.app = app
        self.registry = registry
        self.installer = installer
        self.settings = settings
        self.operator = auth_headers(settings, Role.operator)

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await external_request(self.operator, method, url, **kwargs)

    async def flow(
        self, nodes: dict[str, Any], connections: list[dict[str, str]], **extra: Any
    ) -> str:
        body = {
            "name": f"flow-{uuid.uuid4().hex[:6]}",
            "definition": {"nodes": nodes, "connections": connections, **extra},
        }
        response = await self.client.post(
            f"/v1/workspaces/{WS}/flows", json=body, headers=self.operator
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def start(self, flow_id: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/workspaces/{WS}/flows/{flow_id}/start", headers=self.operator
        )

    async def hook(self, flow_id: str, payload: Any, node: str = "hook") -> None:
        response = await self.client.post(f"/v1/hooks/{WS}/{flow_id}/{node}", json=payload)
        assert response.status_code == 202, response.text

    async def module_worker(self, slug: str, module: str) -> ModuleWorker:
        """A started worker of installation ``slug``, with the broker credentials the runtime
        issues for it (once the runtime knows the installation from the installer's events)."""
        issued = await self.worker_credentials(slug)
        worker = ModuleWorker(issued["amqp_url"], module, issued["queue"])
        await worker.start()
        return worker

    async def worker_credentials(self, slug: str) -> dict[str, Any]:
        issued: dict[str, Any] = {}

        async def credentials() -> bool:
            response = await self.client.post(
                f"/v1/workspaces/{WS}/installations/{slug}/worker-credentials",
                headers=self.operator,
            )
            issued.update(response.json() if response.status_code == 201 else {})
            return response.status_code == 201

        await eventually(credentials)
        return issued

    async def logs(self, flow_id: str) -> list[Any]:
        return await node_log_entries(self.app, flow_id)

    async def unprocessed(self, flow_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/unprocessed-messages", params={"flow": flow_id}, headers=self.operator
        )
        return list(response.json()["items"])


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "runtime") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            installer_url=installer.url,
            component_timeout_seconds=5,
            webhook_poll_interval_seconds=0.2,
            state_gauges_interval_seconds=0.2,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            environment = Env(client, app, registry.url, installer.url, settings)
            assert (
                await environment.external(
                    "POST", f"{installer.url}/v1/workspaces", json={"slug": WS, "name": "Flows"}
                )
            ).status_code == 201
            yield environment


def three_nodes(log_message: str = "{{ payload }}") -> tuple[dict[str, Any], list[dict[str, str]]]:
    nodes = {
        "hook": {"component": "core.webhook"},
        "shape": {
            "component": "core.transform",
            "properties": {
                "mapping": {"order": "{{ payload.id }}", "total": "{{ payload.amount }}"}
            },
        },
        "sink": {"component": "core.log", "properties": {"message": log_message}},
    }
    connections = [{"from": "hook", "to": "shape"}, {"from": "shape", "to": "sink"}]
    return nodes, connections


async def test_a_three_node_flow_runs_end_to_end(env: Env) -> None:
    nodes, connections = three_nodes()
    flow_id = await env.flow(nodes, connections)
    started = await env.start(flow_id)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    await env.hook(flow_id, {"id": 7, "amount": 12.5})

    async def logged() -> bool:
        return await env.logs(flow_id) == [{"order": 7, "total": 12.5}]

    await eventually(logged)


async def test_starting_an_invalid_flow_reports_every_error(env: Env) -> None:
    flow_id = await env.flow(
        {
            "hook": {"component": "core.webhook", "properties": {"unknown": 1}},
            "ghost": {"component": "nothere.Thing"},
            "bad": {"component": "core.nothing"},
        },
        [{"from": "hook", "to": "missing"}, {"from": "hook", "from_port": "nope", "to": "ghost"}],
    )
    response = await env.start(flow_id)
    assert response.status_code == 422
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert {
        "/definition/nodes/hook/properties",
        "/definition/nodes/ghost/component",
        "/definition/nodes/bad/component",
        "/definition/connections/0/to",
        "/definition/connections/1/from_port",
    } <= pointers
    assert (
        await env.client.get(f"/v1/workspaces/{WS}/flows/{flow_id}", headers=env.operator)
    ).json()["status"] == "stopped"


@pytest.fixture(scope="module")
async def echo(env: Env, infra: IsolatedInfra) -> AsyncIterator[ModuleWorker]:
    """The echo module published, installed as ``echo``, opened to users, with a worker running."""
    assert (
        await env.external(
            "POST",
            f"{env.registry}/v1/modules",
            content=module_zip("echo-mod", "1.0.0"),
            headers={**env.operator, "content-type": "application/zip"},
        )
    ).status_code == 201
    installed = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{WS}/installations",
        json={"module": "echo-mod", "slug": "echo"},
    )
    assert installed.status_code == 201, installed.text
    granted = await env.external(
        "POST", f"{env.installer}/v1/workspaces/{WS}/installations/echo/acl/grant-users"
    )
    assert granted.status_code == 201, granted.text
    worker = await env.module_worker("echo", "echo-mod")

    async def known() -> bool:
        flow_id = await env.flow({"e": {"component": "echo.Echo"}}, [])
        response = await env.client.get(
            f"/v1/workspaces/{WS}/flows/{flow_id}/validation", headers=env.operator
        )
        return bool(response.json()["valid"])

    await eventually(known)
    yield worker
    await worker.stop()


def echo_flow() -> tuple[dict[str, Any], list[dict[str, str]], dict[str, Any]]:
    nodes = {
        "hook": {"component": "core.webhook"},
        "echo": {"component": "echo.Echo"},
        "sink": {"component": "core.log"},
    }
    connections = [{"from": "hook", "to": "echo"}, {"from": "echo", "to": "sink"}]
    return (
        nodes,
        connections,
        {"retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 5}},
    )


async def test_a_component_failing_twice_then_succeeding_delivers_once(
    env: Env, echo: ModuleWorker
) -> None:
    nodes, connections, extra = echo_flow()
    flow_id = await env.flow(nodes, connections, **extra)
    assert (await env.start(flow_id)).status_code == 200
    echo.failures = [{"message": "busy", "retryable": True, "status": 503}] * 2
    calls_before = echo.calls
    await env.hook(flow_id, {"n": 1})

    async def delivered() -> bool:
        return await env.logs(flow_id) == [{"echo": {"n": 1}}]

    await eventually(delivered)
    assert echo.calls - calls_before == 3
    assert await env.unprocessed(flow_id) == []


async def test_a_non_retryable_error_goes_straight_to_unprocessed_and_can_be_retried(
    env: Env, echo: ModuleWorker
) -> None:
    nodes, connections, extra = echo_flow()
    flow_id = await env.flow(nodes, connections, **extra)
    assert (await env.start(flow_id)).status_code == 200
    echo.failures = [{"message": "bad input", "retryable": False, "status": 422}]
    await env.hook(flow_id, {"n": 2})

    async def stored() -> bool:
        return len(await env.unprocessed(flow_id)) == 1

    await eventually(stored)
    item = (await env.unprocessed(flow_id))[0]
    assert (item["node_id"], item["attempts"], item["reason"]) == ("echo", 1, "not_retryable")
    assert item["errors"][0]["status"] == 422
    assert item["payload"] == {"n": 2}

    async def gauge(value: float) -> bool:
        # What operators alert on: dead letters waiting, by reason.
        metrics = (await env.client.get("/metrics")).text
        found = re.search(
            r'modyard_runtime_unprocessed_messages\{reason="not_retryable",service="runtime"\} (\S+)',
            metrics,
        )
        return found is not None and float(found.group(1)) == value

    await eventually(lambda: gauge(1))

    retried = await env.client.post(
        f"/v1/unprocessed-messages/{item['id']}", json={"payload": {"n": 3}}, headers=env.operator
    )
    assert retried.status_code == 202

    async def delivered() -> bool:
        return await env.logs(flow_id) == [{"echo": {"n": 3}}]

    await eventually(delivered)
    assert await env.unprocessed(flow_id) == []
    await eventually(lambda: gauge(0))


async def test_removal_and_reinstall_during_retries_lets_the_message_through(
    env: Env, echo: ModuleWorker
) -> None:
    nodes, connections, _ = echo_flow()
    flow_id = await env.flow(
        nodes,
        connections,
        retry_policy={"base_delay_seconds": 2, "multiplier": 1, "max_attempts": 30},
    )
    assert (await env.start(flow_id)).status_code == 200
    removed = await env.external("DELETE", f"{env.installer}/v1/workspaces/{WS}/installations/echo")
    assert removed.status_code == 204
    await asyncio.sleep(1.0)  # the runtime learns of the removal from the installer's event
    await env.hook(flow_id, {"n": 4})
    await asyncio.sleep(3.0)
    assert await env.logs(flow_id) == []
    reinstalled = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{WS}/installations",
        json={"module": "echo-mod", "slug": "echo"},
    )
    assert reinstalled.status_code == 201
    # A new installation: its worker runs with the credentials issued for it.
    await echo.serve(await env.worker_credentials("echo"))

    async def delivered() -> bool:
        return await env.logs(flow_id) == [{"echo": {"n": 4}}]

    await eventually(delivered, timeout=45)
    assert await env.unprocessed(flow_id) == []


async def test_a_major_upgrade_stops_the_flow_and_a_signed_webhook_arrives(
    env: Env, echo: ModuleWorker
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        secret = "a-webhook-secret-of-some-length"
        hook = await env.client.post(
            "/v1/system-webhooks",
            json={"url": receiver.url, "events": ["flow.stopped"], "secret": secret},
            headers=env.operator,
        )
        assert hook.status_code == 201, hook.text
        nodes, connections, extra = echo_flow()
        flow_id = await env.flow(nodes, connections, **extra)
        assert (await env.start(flow_id)).status_code == 200
        published = await env.external(
            "POST",
            f"{env.registry}/v1/modules",
            content=module_zip("echo-mod", "2.0.0"),
            headers={**env.operator, "content-type": "application/zip"},
        )
        assert published.status_code == 201
        upgraded = await env.external(
            "POST",
            f"{env.installer}/v1/workspaces/{WS}/installations/echo/upgrade",
            json={"version": "2.0.0", "accept_breaking": True},
        )
        assert upgraded.status_code == 200, upgraded.text

        async def stopped() -> bool:
            flow = (
                await env.client.get(f"/v1/workspaces/{WS}/flows/{flow_id}", headers=env.operator)
            ).json()
            return bool(
                flow["status"] == "stopped" and flow["stop_reason"] == "module_major_upgrade"
            )

        await eventually(stopped)

        async def received() -> bool:
            return any(
                request.json()["data"]["flow"]["id"] == flow_id for request in receiver.requests
            )

        await eventually(received)
        headers, body = next(
            (r.headers, r.body)
            for r in receiver.requests
            if r.json()["data"]["flow"]["id"] == flow_id
        )
        assert verify_signature(
            secret, headers["x-modyard-timestamp"], body, headers["x-modyard-signature"]
        )
        payload = json.loads(body)
        assert payload["event"] == "flow.stopped"
        assert payload["data"]["reason"] == "module_major_upgrade"
        affected = payload["data"]["affected_components"]
        assert [(a["node"], a["component"], a["module"]) for a in affected] == [
            ("echo", "echo.Echo", "echo-mod")
        ]
    finally:
        await receiver.close()


async def test_node_runs_are_recorded_once_per_message(env: Env) -> None:
    nodes, connections = three_nodes()
    flow_id = await env.flow(nodes, connections)
    assert (await env.start(flow_id)).status_code == 200
    for index in range(20):
        await env.hook(flow_id, {"id": index, "amount": index})

    async def all_logged() -> bool:
        return len(await env.logs(flow_id)) == 20

    await eventually(all_logged)
    async with env.app.state.database.transaction() as session:
        from modyard.runtime.models import NodeExecution

        count = await session.scalar(
            select(func.count())
            .select_from(NodeExecution)
            .where(NodeExecution.flow_id == uuid.UUID(flow_id))
        )
    assert count == 40  # transform and log, once each per message


def poller_zip(version: str = "1.0.0") -> bytes:
    document = {
        "name": "poll-mod",
        "version": version,
        "kind": "connector",
        "components": [
            {
                "name": "Poll",
                "role": "trigger",
                "polling_interval_seconds": 1,
                "executor": {"type": "amqp"},
                "out_ports": [{"name": "out"}],
            }
        ],
    }
    return module_archive(document)


async def test_a_polling_trigger_fails_while_its_module_is_gone_and_recovers(
    env: Env, infra: IsolatedInfra
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    workers: list[ModuleWorker] = []
    try:
        secret = "another-webhook-secret-0123"
        hook = await env.client.post(
            "/v1/system-webhooks",
            json={
                "url": receiver.url,
                "events": ["trigger.failing", "trigger.recovered"],
                "secret": secret,
            },
            headers=env.operator,
        )
        assert hook.status_code == 201, hook.text
        published = await env.external(
            "POST",
            f"{env.registry}/v1/modules",
            content=poller_zip(),
            headers={**env.operator, "content-type": "application/zip"},
        )
        assert published.status_code == 201
        installed = await env.external(
            "POST",
            f"{env.installer}/v1/workspaces/{WS}/installations",
            json={"module": "poll-mod", "slug": "poller"},
        )
        assert installed.status_code == 201, installed.text
        await env.external(
            "POST", f"{env.installer}/v1/workspaces/{WS}/installations/poller/acl/grant-users"
        )
        workers.append(await env.module_worker("poller", "poll-mod"))

        nodes = {"poll": {"component": "poller.Poll"}, "sink": {"component": "core.log"}}
        flow_id = ""

        async def startable() -> bool:
            nonlocal flow_id
            flow_id = flow_id or await env.flow(nodes, [{"from": "poll", "to": "sink"}])
            return (await env.start(flow_id)).status_code == 200

        await eventually(startable)

        async def polled() -> bool:
            return len(await env.logs(flow_id)) >= 1

        await eventually(polled)
        assert (
            await env.external("DELETE", f"{env.installer}/v1/workspaces/{WS}/installations/poller")
        ).status_code == 204

        def events() -> list[str]:
            return [request.json()["event"] for request in receiver.requests]

        async def failing() -> bool:
            return "trigger.failing" in events()

        await eventually(failing)
        logged = len(await env.logs(flow_id))
        await asyncio.sleep(2.5)
        assert events().count("trigger.failing") == 1  # told once, not on every poll
        assert (
            await env.external(
                "POST",
                f"{env.installer}/v1/workspaces/{WS}/installations",
                json={"module": "poll-mod", "slug": "poller"},
            )
        ).status_code == 201
        # A new installation: a new queue and worker user, and so a worker with new credentials.
        await workers.pop().stop()
        workers.append(await env.module_worker("poller", "poll-mod"))

        async def recovered() -> bool:
            return "trigger.recovered" in events() and len(await env.logs(flow_id)) > logged

        await eventually(recovered)
        headers, body = receiver.requests[0].headers, receiver.requests[0].body
        assert verify_signature(
            secret, headers["x-modyard-timestamp"], body, headers["x-modyard-signature"]
        )
        await env.client.post(f"/v1/workspaces/{WS}/flows/{flow_id}/stop", headers=env.operator)
    finally:
        for worker in workers:
            await worker.stop()
        await receiver.close()


async def test_schedule_and_event_triggers_start_messages(env: Env) -> None:
    bad = await env.flow(
        {"tick": {"component": "core.schedule", "properties": {"cron": "every minute!"}}}, []
    )
    refused = await env.start(bad)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/definition/nodes/tick/properties/cron"

    scheduled = await env.flow(
        {
            "tick": {
                "component": "core.schedule",
                "properties": {"cron": "* * * * * *", "payload": {"beat": True}},
            },
            "sink": {"component": "core.log"},
        },
        [{"from": "tick", "to": "sink"}],
    )
    assert (await env.start(scheduled)).status_code == 200

    async def beating() -> bool:
        return len(await env.logs(scheduled)) >= 2

    await eventually(beating)
    await env.client.post(f"/v1/workspaces/{WS}/flows/{scheduled}/stop", headers=env.operator)
    assert all(entry == {"beat": True} for entry in await env.logs(scheduled))

    listener = await env.flow(
        {
            "on": {"component": "core.event", "properties": {"type": "acme.order.created"}},
            "sink": {"component": "core.log", "properties": {"message": "{{ payload.data }}"}},
        },
        [{"from": "on", "to": "sink"}],
    )
    assert (await env.start(listener)).status_code == 200
    emitter = await env.flow(
        {
            "hook": {"component": "core.webhook"},
            "emit": {
                "component": "core.emit",
                "properties": {"type": "acme.order.created", "data": "{{ payload }}"},
            },
        },
        [{"from": "hook", "to": "emit"}],
    )
    assert (await env.start(emitter)).status_code == 200
    await env.hook(emitter, {"order": 42})

    async def heard() -> bool:
        return await env.logs(listener) == [{"order": 42}]

    await eventually(heard)


async def test_a_webhook_takes_the_body_size_its_node_declares_above_the_services_default(
    env: Env,
) -> None:
    """The hooks route declares the largest cap a webhook node may (issue 17, hole 9): a node
    declaring 3 MiB takes 2 MiB, above the service's 1 MiB default, and refuses 4 MiB."""
    nodes, connections = three_nodes()
    nodes["hook"]["properties"] = {"max_body_bytes": 3 * 1024 * 1024}
    flow_id = await env.flow(nodes, connections)
    assert (await env.start(flow_id)).status_code == 200
    assert env.settings.max_request_body_bytes < 2 * 1024 * 1024
    await env.hook(flow_id, {"id": 8, "amount": 1.0, "pad": "x" * (2 * 1024 * 1024)})
    refused = await env.client.post(
        f"/v1/hooks/{WS}/{flow_id}/hook", json={"pad": "x" * (4 * 1024 * 1024)}
    )
    assert refused.status_code == 413, refused.text
    assert refused.json()["type"].endswith("/webhook-body-too-large")


async def test_an_edited_flow_is_served_its_new_definition_by_the_next_webhook(env: Env) -> None:
    """The webhook route keeps each flow's validated definition per revision
    (engine/flow_cache.py): an edited flow is served its new definition by the very next webhook,
    and a stop is refused at once."""
    nodes, connections = three_nodes()
    flow_id = await env.flow(nodes, connections)
    assert (await env.start(flow_id)).status_code == 200
    await env.hook(flow_id, {"id": 1, "amount": 2.0})  # the definition is now cached

    async def shaped() -> bool:
        return await env.logs(flow_id) == [{"order": 1, "total": 2.0}]

    await eventually(shaped)

    # Stopped: the very next webhook is refused, whatever the route remembers of the flow.
    stopped = await env.client.post(
        f"/v1/workspaces/{WS}/flows/{flow_id}/stop", headers=env.operator
    )
    assert stopped.status_code == 200, stopped.text
    refused = await env.client.post(f"/v1/hooks/{WS}/{flow_id}/hook", json={"id": 9})
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("flow-not-running")

    # Edited: the trigger is renamed and wired straight to the sink, skipping the transform.
    replaced = await env.client.put(
        f"/v1/workspaces/{WS}/flows/{flow_id}",
        json={
            "name": f"flow-{uuid.uuid4().hex[:6]}",
            "definition": {
                "nodes": {"intake": nodes["hook"], "sink": nodes["sink"]},
                "connections": [{"from": "intake", "to": "sink"}],
            },
        },
        headers=env.operator,
    )
    assert replaced.status_code == 200, replaced.text
    assert (await env.start(flow_id)).status_code == 200

    gone = await env.client.post(f"/v1/hooks/{WS}/{flow_id}/hook", json={"id": 3})
    assert gone.status_code == 404
    await env.hook(flow_id, {"id": 2, "amount": 5.0}, node="intake")

    async def raw() -> bool:
        return await env.logs(flow_id) == [{"order": 1, "total": 2.0}, {"id": 2, "amount": 5.0}]

    await eventually(raw)

    # Cached or not, the definition is this workspace's: the same flow id under another
    # workspace's address is no webhook, and nothing reaches the flow.
    elsewhere = await env.client.post(f"/v1/hooks/other-{WS}/{flow_id}/intake", json={"id": 4})
    assert elsewhere.status_code == 404
    await asyncio.sleep(0.5)
    assert await env.logs(flow_id) == [{"order": 1, "total": 2.0}, {"id": 2, "amount": 5.0}]
