"""``modyard flows …``, ``dlq …`` and ``webhooks …`` against real installer and runtime processes.

Only core components are used, so no registry is needed. Every CLI call is a subprocess that costs
a couple of seconds of imports: flows the test merely needs (the failing one) are made through the
API, independent CLI calls run concurrently.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.runtime import unprocessed_messages
from modyard.testing.services import (
    auth_headers,
    free_port,
    run_modyard,
    service_process,
)

pytestmark = pytest.mark.infra

WS = "runtime-cli"


class Receiver:
    """An HTTP server on 127.0.0.1 that records what it is sent and answers 200 with JSON."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in head[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append((head[0].split(" ")[1], json.loads(body) if body else None))
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 11\r\nConnection: close\r\n\r\n{"ok":true}'
            )
            await writer.drain()
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


class Cluster:
    def __init__(self, env: dict[str, str], api: httpx.AsyncClient) -> None:
        self.env = env  # MODYARD_*_URL for the CLI
        self.api = api  # the runtime's API, as an operator


@pytest.fixture(scope="module")
async def cluster(infra: IsolatedInfra) -> AsyncIterator[Cluster]:
    installer_env = {**infra.env(), "MODYARD_INSTALLER_DB_SCHEMA": "installer_runtime_cli"}
    async with service_process("installer", installer_env) as installer:
        runtime_env = {
            **infra.env(),
            "MODYARD_RUNTIME_DB_SCHEMA": "runtime_cli",
            "MODYARD_INSTALLER_URL": installer.url,
        }
        async with service_process("runtime", runtime_env) as runtime:
            operator = auth_headers(CommonSettings(), Role.operator)
            async with httpx.AsyncClient(headers=operator, timeout=30) as client:
                created = await client.post(
                    f"{installer.url}/v1/workspaces", json={"slug": WS, "name": "Runtime CLI"}
                )
                assert created.status_code in (201, 409), created.text
            async with httpx.AsyncClient(base_url=runtime.url, headers=operator, timeout=30) as api:
                yield Cluster(
                    {"MODYARD_INSTALLER_URL": installer.url, "MODYARD_RUNTIME_URL": runtime.url},
                    api,
                )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def modyard(env: dict[str, str], *args: str, expect: int = 0) -> tuple[Any, str]:
    return await run_modyard({**env, "COLUMNS": "200"}, *args, expect=expect)


async def test_flows_from_a_file_to_running_and_back(
    cluster: Cluster, receiver: Receiver, tmp_path: Path
) -> None:
    flow_file = tmp_path / "orders.yaml"
    flow_file.write_text(
        f"""
name: orders
description: From a webhook to the log, and to a receiver
definition:
  nodes:
    hook: {{component: core.webhook}}
    shape:
      component: core.transform
      properties:
        mapping: {{order: "{{{{ payload.id }}}}", total: "{{{{ payload.amount }}}}"}}
    sink: {{component: core.log}}
    notify:
      component: core.http
      properties: {{method: POST, url: "{receiver.url}/orders", body: "{{{{ payload }}}}"}}
  connections:
    - {{from: hook, to: shape}}
    - {{from: shape, to: sink}}
    - {{from: shape, to: notify}}
"""
    )
    broken = await cluster.api.post(
        f"/v1/workspaces/{WS}/flows",
        json={
            "name": "broken",
            "definition": {
                "nodes": {"hook": {"component": "core.webhook"}, "bad": {"component": "core.nope"}},
                "connections": [{"from": "hook", "to": "ghost"}],
            },
        },
    )
    assert broken.status_code == 201, broken.text
    (created, _), (_, refused) = await asyncio.gather(
        modyard(cluster.env, "flows", "create", "-w", WS, "--file", str(flow_file), "--json"),
        modyard(cluster.env, "flows", "start", broken.json()["id"], "-w", WS, expect=1),
    )
    assert (created["name"], created["status"]) == ("orders", "stopped")
    assert set(created["definition"]["nodes"]) == {"hook", "shape", "sink", "notify"}
    # a refused start shows the problem and every error's pointer
    assert "422" in refused
    assert "/definition/nodes/bad/component" in refused
    assert "/definition/connections/0/to" in refused

    flow_id = created["id"]
    (shown, _), (started, _) = await asyncio.gather(
        modyard(cluster.env, "flows", "show", flow_id, "-w", WS, "--json"),
        modyard(cluster.env, "flows", "start", flow_id, "-w", WS, "--json"),
    )
    assert shown["definition"] == created["definition"]
    assert started["status"] == "running"

    async def notified() -> bool:
        return receiver.requests == [("/orders", {"order": 7, "total": 12.5})]

    async def send_and_wait() -> None:
        hook = await cluster.api.post(
            f"/v1/hooks/{WS}/{flow_id}/hook", json={"id": 7, "amount": 12.5}
        )
        assert hook.status_code == 202, hook.text
        await eventually(notified, timeout=20)

    (running, _), _ = await asyncio.gather(
        modyard(cluster.env, "flows", "list", "-w", WS, "--status", "running", "--json"),
        send_and_wait(),
    )
    assert [flow["id"] for flow in running] == [flow_id]

    stopped, _ = await modyard(cluster.env, "flows", "stop", flow_id, "-w", WS, "--json")
    assert stopped["status"] == "stopped"


async def test_unprocessed_messages_are_listed_shown_retried_and_deleted(
    cluster: Cluster, receiver: Receiver, tmp_path: Path
) -> None:
    flow_id, _ = await unprocessed_messages(cluster.api, "", WS, 3)

    async def stored(count: int) -> bool:
        page = await cluster.api.get("/v1/unprocessed-messages", params={"flow": flow_id})
        return len(page.json()["items"]) == count

    # two pages of one, stopped at --limit 2
    listed, _ = await modyard(
        cluster.env,
        "dlq",
        "list",
        "--flow",
        flow_id,
        "--workspace",
        WS,
        "--since",
        "2000-01-01T00:00:00Z",
        "--page-size",
        "1",
        "--limit",
        "2",
        "--json",
    )
    assert len(listed) == 2
    urls = {item["payload"]["url"] for item in listed}  # the node runs them concurrently
    assert len(urls) == 2
    assert urls <= {f"ftp://nowhere/{index}" for index in range(3)}
    first, second = (item["id"] for item in listed)

    replacement = tmp_path / "payload.json"
    replacement.write_text(json.dumps({"url": f"{receiver.url}/retried"}))
    (shown, _), (retried, _), (_, unfiltered) = await asyncio.gather(
        modyard(cluster.env, "dlq", "show", second, "--json"),
        modyard(cluster.env, "dlq", "retry", first, "--payload", str(replacement), "--json"),
        modyard(cluster.env, "dlq", "delete", "--all", expect=2),
    )
    assert (shown["node_id"], shown["reason"], shown["attempts"]) == ("call", "not_retryable", 1)
    assert shown["errors"][0]["retryable"] is False
    assert shown["payload"] == listed[1]["payload"]
    assert retried == {"count": 1, "ids": [first]}
    assert "--yes" in unfiltered  # --all needs a filter, or --yes to delete everything

    async def delivered() -> bool:
        return receiver.requests == [("/retried", None)]

    await eventually(delivered, timeout=20)
    await eventually(lambda: stored(2), timeout=20)

    bulk, _ = await modyard(cluster.env, "dlq", "retry", "--all", "--flow", flow_id, "--json")
    assert bulk["count"] == 2
    assert first not in bulk["ids"]

    async def failed_again() -> bool:
        page = await cluster.api.get("/v1/unprocessed-messages", params={"flow": flow_id})
        ids = [item["id"] for item in page.json()["items"]]
        return len(ids) == 2 and not set(ids) & set(bulk["ids"])

    await eventually(failed_again, timeout=20)

    deleted, _ = await modyard(cluster.env, "dlq", "delete", "--all", "--flow", flow_id, "--json")
    assert deleted["count"] == 2
    assert await stored(0)


async def test_system_webhooks_are_added_tested_and_removed(cluster: Cluster) -> None:
    closed = f"http://127.0.0.1:{free_port()}/hook"  # only the records matter here
    added, _ = await modyard(
        cluster.env,
        "webhooks",
        "add",
        closed,
        "--secret",
        "a-secret-of-some-length",
        "--description",
        "ops",
        "--json",
    )
    assert (added["url"], added["events"], added["description"]) == (closed, ["*"], "ops")
    assert "secret" not in added

    webhook_id = added["id"]
    (listed, _), (test, _) = await asyncio.gather(
        modyard(cluster.env, "webhooks", "list", "--json"),
        modyard(cluster.env, "webhooks", "test", webhook_id, "--json"),
    )
    assert webhook_id in [hook["id"] for hook in listed]
    assert (test["event"], test["webhook_id"]) == ("webhook.test", webhook_id)

    deliveries, _ = await modyard(
        cluster.env, "webhooks", "deliveries", webhook_id, "--limit", "5", "--json"
    )
    assert [delivery["id"] for delivery in deliveries] == [test["id"]]
    assert deliveries[0]["status"] != "delivered"  # nothing listens on that port

    removed, _ = await modyard(cluster.env, "webhooks", "remove", webhook_id)
    assert webhook_id in removed
    assert (await cluster.api.get(f"/v1/system-webhooks/{webhook_id}")).status_code == 404
