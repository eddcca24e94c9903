"""End to end across real processes: an event written in one service's transaction reaches the
other services' consumers exactly once, even when the broker delivers it twice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modyard.common.bus import topology
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.testing.services import (
    SERVICE_PACKAGES,
    ServiceProcess,
    auth_headers,
    cluster_env,
)

pytestmark = pytest.mark.infra


async def receipts(
    client: httpx.AsyncClient, process: ServiceProcess, ping_id: str
) -> list[dict[str, str]]:
    response = await client.get(f"{process.url}/v1/diagnostics/pings/{ping_id}")
    response.raise_for_status()
    return list(response.json()["receipts"])


async def wait_for_receipts(
    client: httpx.AsyncClient, process: ServiceProcess, ping_id: str
) -> list[dict[str, str]]:
    for _ in range(300):
        found = await receipts(client, process, ping_id)
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"{process.service} never received ping {ping_id}\n{process.logs()[-3000:]}"
    )


async def consumed(client: httpx.AsyncClient, process: ServiceProcess, outcome: str) -> float:
    text = (await client.get(f"{process.url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "modyard_events_consumed"
        for sample in family.samples
        if sample.name == "modyard_events_consumed_total"
        and sample.labels.get("outcome") == outcome
        and sample.labels.get("type") == "modyard.registry.diagnostic_ping.sent"
    )


async def test_event_reaches_every_service_once_even_when_delivered_twice(
    cluster: dict[str, ServiceProcess], infra: IsolatedInfra, infra_settings: CommonSettings
) -> None:
    registry, installer = cluster["registry"], cluster["installer"]
    async with httpx.AsyncClient(headers=auth_headers(infra_settings), timeout=10) as client:
        sent = await client.post(
            f"{registry.url}/v1/diagnostics/pings", headers={"X-Correlation-ID": "e2e-corr-1"}
        )
        assert sent.status_code == 202
        ping_id, event_id = sent.json()["ping_id"], sent.json()["event_id"]

        for service in SERVICE_PACKAGES:  # the services on the bus (not the backoffice)
            found = await wait_for_receipts(client, cluster[service], ping_id)
            assert [r["event_id"] for r in found] == [event_id]

        # The broker delivers the very same message twice more (as after a lost ack).
        connection = await asyncpg.connect(asyncpg_dsn(infra.database_url))
        try:
            envelope = await connection.fetchval(
                "SELECT envelope FROM registry.outbox WHERE event_id = $1", event_id
            )
        finally:
            await connection.close()
        body = envelope.encode() if isinstance(envelope, str) else json.dumps(envelope).encode()
        # The event carries the correlation id of the request that caused it.
        assert json.loads(body)["correlationid"] == "e2e-corr-1"
        duplicates_before = await consumed(client, installer, "duplicate")
        amqp = await aio_pika.connect(infra.amqp_url)
        async with amqp:
            channel = await amqp.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(topology.EVENTS_EXCHANGE)
            for _ in range(2):
                await exchange.publish(
                    aio_pika.Message(
                        body, message_id=event_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key="modyard.registry.diagnostic_ping.sent",
                )

        for _ in range(200):
            if await consumed(client, installer, "duplicate") >= duplicates_before + 2:
                break
            await asyncio.sleep(0.05)
        assert await consumed(client, installer, "duplicate") == duplicates_before + 2
        for service in SERVICE_PACKAGES:
            assert len(await receipts(client, cluster[service], ping_id)) == 1, service


async def run_cli(cluster: dict[str, ServiceProcess], *args: str) -> dict[str, Any]:
    """``modyard <args> --json`` pointed at the cluster; its exit code must be 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modyard.sdk.cli",
        *args,
        "--json",
        env={**os.environ, **cluster_env(cluster)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode() + stdout.decode()
    return dict(json.loads(stdout))


async def test_modyard_ping_command_checks_the_whole_bus(
    cluster: dict[str, ServiceProcess],
) -> None:
    result = await run_cli(cluster, "ping", "--from", "runtime")
    assert result == {
        "ok": True,
        "received": dict.fromkeys(SERVICE_PACKAGES, 1),
    }


async def test_modyard_status_reports_every_service_ready(
    cluster: dict[str, ServiceProcess],
) -> None:
    report = await run_cli(cluster, "status", "--services-only")
    assert report["healthy"] is True
    assert {check["name"]: check["state"] for check in report["checks"]} == dict.fromkeys(
        ("registry", "installer", "runtime", "appcell-gateway", "deployer", "backoffice"), "up"
    )
