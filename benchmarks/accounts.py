"""Accounts: creating an API-key account (the installer asks the JavaScript runner, whose
sandboxed auth.js asks a loopback vendor) and reading its credentials as the runner does before
each component call. The registry and the installer are processes; the runner is served in this
process on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import time
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import web

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, free_port, served, service_process

CREATES = 30
READS = 500
CONCURRENCY = 8
WS = "bench-accounts"
NAME = "benchacct.crm"

AUTH_JS = """'use strict';
const me = async (context) => (await context.httpRequest({
    url: context.baseUrl + '/me', headers: { Authorization: 'Bearer ' + context.apiKey },
})).data;
module.exports = { type: 'apiKey', definition: {
    auth: { apiKey: { type: 'text', name: 'API Key' }, baseUrl: { type: 'text', name: 'Base URL' } },
    accountNameFromProfileInfo: 'email', requestProfileInfo: me,
    validate: async (context) => { await me(context); return true; },
} };
"""


def _bundle() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bundle.json", json.dumps({"name": NAME, "version": "1.0.0"}))
        archive.writestr(
            "core/Who/component.json",
            json.dumps({"name": f"{NAME}.core.Who", "auth": {"service": "benchacct:crm"}}),
        )
        archive.writestr("core/Who/Who.js", "module.exports = { receive: async () => {} };")
        archive.writestr("auth.js", AUTH_JS)
    return buffer.getvalue()


@asynccontextmanager
async def _vendor() -> AsyncIterator[str]:
    async def me(request: web.Request) -> web.Response:
        return web.json_response({"email": "bench@vendor.test"})

    app = web.Application()
    app.router.add_get("/me", me)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def _ms(values: list[float], share: float) -> float:
    return round(sorted(values)[int(share * (len(values) - 1))] * 1000, 2)


async def accounts_load(infra: IsolatedInfra) -> dict[str, Any]:
    settings = CommonSettings()
    operator = auth_headers(settings, Role.operator)
    user = auth_headers(settings, Role.user, subject="bench@acme.test", workspaces=(WS,))
    service = auth_headers(settings, Role.service, subject="js-runner")
    runner_port = free_port()
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_bench_accounts"}
    async with _vendor() as vendor, service_process("registry", registry_env) as registry:
        runner_app = create_runner(
            JsRunnerSettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                registry_url=registry.url,
                db_schema="js_runner_bench_accounts",
                egress_allow_loopback=True,
            )
        )
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "installer_bench_accounts",
            "MODYARD_REGISTRY_URL": registry.url,
            "MODYARD_INSTALLER_JS_RUNNER_URL": f"http://127.0.0.1:{runner_port}",
        }
        async with (
            served(runner_app, port=runner_port),
            service_process("installer", installer_env) as installer,
            httpx.AsyncClient(base_url=installer.url, timeout=60) as client,
        ):
            published = await client.post(
                f"{registry.url}/v1/modules",
                content=_bundle(),
                headers={**operator, "content-type": "application/zip"},
            )
            published.raise_for_status()
            (
                await client.post("/v1/workspaces", json={"slug": WS, "name": WS}, headers=operator)
            ).raise_for_status()
            (
                await client.post(
                    f"/v1/workspaces/{WS}/installations", json={"module": NAME}, headers=operator
                )
            ).raise_for_status()
            body = {"service": "benchacct:crm", "credentials": {"apiKey": "k", "baseUrl": vendor}}
            creates: list[float] = []
            account = ""
            for _ in range(CREATES):
                started = time.perf_counter()
                created = await client.post(
                    f"/v1/workspaces/{WS}/accounts", json=body, headers=user
                )
                creates.append(time.perf_counter() - started)
                created.raise_for_status()
                account = created.json()["id"]
            path = f"/v1/workspaces/{WS}/accounts/{account}/credentials"
            reads: list[float] = []
            queue = iter(range(READS))

            async def reader() -> None:
                for _ in queue:
                    started = time.perf_counter()
                    answer = await client.get(path, headers=service)
                    reads.append(time.perf_counter() - started)
                    answer.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(reader() for _ in range(CONCURRENCY)))
            elapsed = time.perf_counter() - started
    return {
        "benchmark": "accounts",
        "create_p50_ms": _ms(creates, 0.5),
        "create_p95_ms": _ms(creates, 0.95),
        "create_mean_ms": round(statistics.mean(creates) * 1000, 2),
        "credential_reads_per_second": round(READS / elapsed, 1),
        "credential_read_p50_ms": _ms(reads, 0.5),
        "credential_read_p95_ms": _ms(reads, 0.95),
        "creates": CREATES,
        "reads": READS,
        "concurrency": CONCURRENCY,
    }
