"""A flow whose middle node is a ``js`` component (an Appmixer look-alike on the JavaScript
runner) against the same flow whose middle node is an ``amqp`` Python module worker (the SDK's
``ModuleWorker``), in the same run, on the same runtime process: transform → echo → log, MESSAGES
messages fed straight onto the work queue each, counted when logged.

Target (issue 20): js ≥ 70% of the amqp flow's node executions/s (85% the stretch). Both echo
nodes answer at once, so the figure is what the executor hop costs a flow: for js, the runner's
queue, its supervisor and the sandboxed Node child; for amqp, the worker's queue and a Python
worker (in this benchmark's process).

A third flow's echo is a Slingr flow step (issue 21, docs/slingr.md) on the same runner: its
package code runs in a worker thread of the child, behind the synchronous host-call bridge.
Target: the Slingr flow ≥ 50% of the Appmixer (js) flow's node executions/s, same run.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import yaml

from benchmarks.flow_load import publish_work, wait_for_node_logs
from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.sdk.cell import ComponentCall, WorkerOptions
from modyard.sdk.cell import ModuleWorker as SdkModuleWorker
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.testing.services import auth_headers, service_process

MESSAGES = 5_000
NODES = 3
WS = "jsbench"
SCHEMA = "runtime_jsbench"
#: Shared with the runner's tests: the base layer is installed once per machine.
CACHE = Path("/tmp/modyard-js-runner-test-cache")  # noqa: S108

ECHO_JS = """
module.exports = { async receive(context) {
    await context.sendJson(context.messages.in.content, 'out');
} };
"""


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return buffer.getvalue()


def _amqp_module(name: str) -> bytes:
    document = {
        "name": name,
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
    return _zip({"modyard.yaml": yaml.safe_dump(document)})


def _js_module(name: str) -> bytes:
    component = {"name": f"{name}.echo.Echo", "inPorts": ["in"], "outPorts": ["out"]}
    return _zip(
        {
            "bundle.json": json.dumps({"name": name, "version": "1.0.0"}),
            "echo/Echo/component.json": json.dumps(component),
            "echo/Echo/Echo.js": ECHO_JS,
        }
    )


SLINGR_ECHO_JS = """step.echo = function (inputs) {
    return {n: inputs.n};
};
"""


def _slingr_package(name: str) -> bytes:
    step = {
        "label": "Echo",
        "name": "echo",
        "description": "Answers its input.",
        "inputs": [{"label": "N", "name": "n", "type": "number"}],
        "outputs": [{"label": "N", "name": "n", "type": "number"}],
    }
    descriptor = {
        "name": name,
        "label": "Bench echo",
        "metadata": [{"type": "flowStep", "path": "/flowSteps/echo"}],
    }
    return _zip(
        {
            "package.json": json.dumps(descriptor),
            "flowSteps/echo/step.json": json.dumps(step),
            "flowSteps/echo/step.js": SLINGR_ECHO_JS,
        }
    )


async def _until(what: Any, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await what()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.5)


async def _run_flow(
    infra: IsolatedInfra, client: httpx.AsyncClient, runtime: str, middle: str
) -> dict[str, Any]:
    definition = {
        "nodes": {
            "shape": {
                "component": "core.transform",
                "properties": {"mapping": {"n": "{{ payload.n }}"}},
            },
            "echo": {"component": middle},
            "sink": {"component": "core.log", "properties": {"message": {"n": "{{ payload.n }}"}}},
        },
        "connections": [{"from": "shape", "to": "echo"}, {"from": "echo", "to": "sink"}],
    }
    created = await client.post(
        f"{runtime}/v1/workspaces/{WS}/flows",
        json={"name": f"bench {middle} {uuid.uuid4().hex[:6]}", "definition": definition},
    )
    created.raise_for_status()
    flow_id = created.json()["id"]

    async def started() -> bool:
        # Until the runtime has heard of the installations, the start is refused as invalid.
        response = await client.post(f"{runtime}/v1/workspaces/{WS}/flows/{flow_id}/start")
        return response.status_code == 200

    if not await _until(started):
        raise RuntimeError(f"the {middle} flow did not start")
    connection = await aio_pika.connect(infra.amqp_url)
    started_at = time.perf_counter()
    async with connection:
        await publish_work(connection, WS, flow_id, MESSAGES, lambda n: {"n": n})
    database = await asyncpg.connect(
        asyncpg_dsn(infra.database_url), server_settings={"search_path": SCHEMA}
    )
    try:
        logged = await wait_for_node_logs(database, flow_id, MESSAGES, poll_seconds=0.25)
        elapsed = time.perf_counter() - started_at
        distinct = await database.fetchval(
            "SELECT count(DISTINCT entry->>'n') FROM node_logs WHERE flow_id = $1",
            uuid.UUID(flow_id),
        )
    finally:
        await database.close()
    await client.post(f"{runtime}/v1/workspaces/{WS}/flows/{flow_id}/stop")
    return {
        "middle": middle,
        "messages": MESSAGES,
        "logged": logged,
        "logged_exactly_once": distinct == MESSAGES and logged == MESSAGES,
        "seconds": round(elapsed, 2),
        "node_executions_per_second": round(logged * NODES / elapsed),
    }


async def js_flow_load(infra: IsolatedInfra) -> dict[str, Any]:
    headers = auth_headers(CommonSettings(), Role.operator)
    suffix = uuid.uuid4().hex[:6]
    amqp_name, js_name = f"benchecho{suffix}", f"bench{suffix}.js"
    slingr_name = f"benchslingr{suffix}"
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            service_process(
                "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_jsbench"}
            )
        )
        installer = await stack.enter_async_context(
            service_process(
                "installer",
                {
                    **infra.env(),
                    "MODYARD_INSTALLER_DB_SCHEMA": "installer_jsbench",
                    "MODYARD_REGISTRY_URL": registry.url,
                },
            )
        )
        common = {**infra.env(), "MODYARD_INSTALLER_URL": installer.url}
        runtime = await stack.enter_async_context(
            service_process(
                "runtime",
                {
                    **common,
                    "MODYARD_RUNTIME_DB_SCHEMA": SCHEMA,
                    "MODYARD_RUNTIME_LOG_LEVEL": "WARNING",
                },
            )
        )
        await stack.enter_async_context(
            service_process(
                "js-runner",
                {
                    **common,
                    "MODYARD_REGISTRY_URL": registry.url,
                    "MODYARD_JS_RUNNER_DB_SCHEMA": "js_runner_jsbench",
                    "MODYARD_JS_RUNNER_CACHE_DIR": str(CACHE),
                    "MODYARD_JS_RUNNER_LOG_LEVEL": "WARNING",
                },
            )
        )
        client = await stack.enter_async_context(httpx.AsyncClient(headers=headers, timeout=60))
        for content in (_amqp_module(amqp_name), _js_module(js_name)):
            (
                await client.post(
                    f"{registry.url}/v1/modules",
                    content=content,
                    headers={"content-type": "application/zip"},
                )
            ).raise_for_status()
        (
            await client.post(
                f"{registry.url}/v1/modules",
                params={"version": "1.0.0"},  # Slingr packages carry none
                content=_slingr_package(slingr_name),
                headers={"content-type": "application/zip"},
            )
        ).raise_for_status()
        (
            await client.post(f"{installer.url}/v1/workspaces", json={"slug": WS, "name": WS})
        ).raise_for_status()
        for module, slug in (
            (amqp_name, "amqpecho"),
            (js_name, "jsecho"),
            (slingr_name, "slingrecho"),
        ):
            (
                await client.post(
                    f"{installer.url}/v1/workspaces/{WS}/installations",
                    json={"module": module, "slug": slug},
                )
            ).raise_for_status()
            (
                await client.post(
                    f"{installer.url}/v1/workspaces/{WS}/installations/{slug}/acl/grant-users"
                )
            ).raise_for_status()

        issued: dict[str, Any] = {}

        async def credentials() -> bool:
            response = await client.post(
                f"{runtime.url}/v1/workspaces/{WS}/installations/amqpecho/worker-credentials"
            )
            issued.update(response.json() if response.status_code == 201 else {})
            return response.status_code == 201

        if not await _until(credentials):
            raise RuntimeError("no worker credentials for the amqp echo")
        sdk = SdkModuleWorker(amqp_name)

        @sdk.component("Echo")
        async def echo(payload: Any, call: ComponentCall) -> Any:
            return payload

        worker = sdk.worker(WorkerOptions(amqp_url=issued["amqp_url"], queue=issued["queue"]))
        await worker.start()
        stack.push_async_callback(worker.stop)
        listed = (await client.get(f"{installer.url}/v1/workspaces/{WS}/components")).json()
        refs = {item["ref"].split(".", 1)[0]: item["ref"] for item in listed}
        amqp = await _run_flow(infra, client, runtime.url, refs["amqpecho"])
        js = await _run_flow(infra, client, runtime.url, refs["jsecho"])
        slingr = await _run_flow(infra, client, runtime.url, refs["slingrecho"])
    ratio = js["node_executions_per_second"] / max(1, amqp["node_executions_per_second"])
    slingr_ratio = slingr["node_executions_per_second"] / max(1, js["node_executions_per_second"])
    return {
        "benchmark": "js_flow",
        "flow": "transform → echo (js | amqp | slingr) → log",
        "amqp": amqp,
        "js": js,
        "slingr": slingr,
        "js_to_amqp": round(ratio, 3),
        "target_ratio": 0.7,
        "slingr_to_js": round(slingr_ratio, 3),
        "slingr_target_ratio": 0.5,
        "targets_met": ratio >= 0.7
        and slingr_ratio >= 0.5
        and amqp["logged_exactly_once"]
        and js["logged_exactly_once"]
        and slingr["logged_exactly_once"],
        "note": "2 shared cores, other engineers' tests running: absolute figures are low and noisy",
    }
