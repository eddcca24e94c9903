"""The broker-outage scenario shared by ``tests/test_broker_outage.py`` and the ``resilience``
benchmark: the five services and a cell on a private RabbitMQ node, flow-webhook and gateway load,
``rabbitmqctl stop_app`` for ten seconds, ``start_app``, and the accounting afterwards.

The broker comes in as a :class:`Broker` (``modyard.testing.throwaway`` provides one) and the cell
as an archive and a command, so that this library needs neither the SDK nor the examples.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings
from modyard.testing.cells import first_answer, install_cell
from modyard.testing.cluster import running_cluster
from modyard.testing.resilience import (
    Caller,
    Calls,
    Tally,
    error_lines,
    readiness,
    schema_of,
    settle,
    tally_flow,
    tally_requests,
    unpublished_outbox_rows,
    until,
    wait_for,
    webhook_load,
)
from modyard.testing.services import SERVICE_PACKAGES, ServiceProcess, auth_headers

WS = "outage"
CELL_SLUG = "rc"
SCHEMA_SUFFIX = "outage"
ACTION = "NewResellerClub/actions"
#: Loops per kind of load: enough to keep work in flight at every moment, few enough to leave
#: the two cores to the services.
CONCURRENCY = 6


class Broker(Protocol):
    def env(self) -> dict[str, str]: ...
    async def stop_app(self) -> None: ...
    async def start_app(self) -> None: ...


@dataclass
class OutageReport:
    """Everything the scenario saw; the test asserts on it and the benchmark prints it."""

    outage_seconds: float
    flows: Tally
    gateway: Tally
    pings_sent: int
    pings_received_everywhere: int
    ping_receipts_duplicated: int
    unpublished_outbox: dict[str, int]
    readiness_down: dict[str, int | None]
    readiness_after: dict[str, int | None]
    statuses_during_outage: dict[str, dict[str, int]]
    slowest_refusal_seconds: float
    first_flow_completion_seconds: float | None
    first_gateway_reply_seconds: float | None
    backlog_drained_seconds: float | None
    all_ready_seconds: float | None
    #: When the broker was stopped and started again (time.monotonic()), to place answers.
    stopped_at: float
    restarted_at: float
    #: Flow messages accepted (202) but neither completed nor stored: must be empty.
    lost_flow_keys: list[int]
    #: The services' error log lines (a failing test shows them).
    error_logs: dict[str, list[str]]
    flow_calls: Calls = field(repr=False)
    gateway_calls: Calls = field(repr=False)

    def figures(self) -> dict[str, Any]:
        return {
            "outage_seconds": round(self.outage_seconds, 1),
            "flows": self.flows.as_dict(),
            "gateway": self.gateway.as_dict(),
            "outbox_pings": {
                "sent": self.pings_sent,
                "received_by_every_service": self.pings_received_everywhere,
                "duplicated_receipts": self.ping_receipts_duplicated,
                "unpublished_rows_left": sum(self.unpublished_outbox.values()),
            },
            "slowest_refusal_during_outage_s": round(self.slowest_refusal_seconds, 3),
            "recovery_after_start_app_s": {
                "all_services_ready": _round(self.all_ready_seconds),
                "first_flow_completion": _round(self.first_flow_completion_seconds),
                "first_gateway_reply": _round(self.first_gateway_reply_seconds),
                "backlog_drained": _round(self.backlog_drained_seconds),
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _domain(key: int) -> str:
    return f"outage-{key % CONCURRENCY}.com"


async def run_broker_outage(
    broker: Broker,
    database_url: str,
    *,
    cell_archive: bytes,
    cell_command: Callable[[Path], list[str]],
    cell_cwd: Path | None = None,
    outage_seconds: float = 10.0,
    pings: int = 5,
    extra_env: Mapping[str, str] | None = None,
) -> OutageReport:
    settings = CommonSettings()
    operator = auth_headers(settings, Role.operator, workspaces=(WS,))
    env = {
        "MODYARD_DATABASE_URL": database_url,
        **broker.env(),
        "MODYARD_LOG_LEVEL": "WARNING",
        # A caller whose request is lost with the broker hears so within this, not 10 s later.
        "MODYARD_APPCELL_GATEWAY_REQUEST_TIMEOUT_SECONDS": "5",
        **(extra_env or {}),
    }
    async with AsyncExitStack() as stack:
        cluster = (
            await stack.enter_async_context(running_cluster(env, schema_suffix=SCHEMA_SUFFIX))
        ).processes
        runtime, gateway = cluster["runtime"].url, cluster["appcell-gateway"].url
        client = await stack.enter_async_context(httpx.AsyncClient(headers=operator, timeout=30))
        installed = await install_cell(
            client,
            registry=cluster["registry"].url,
            installer=cluster["installer"].url,
            gateway=gateway,
            archive=cell_archive,
            workspace=WS,
            slug=CELL_SLUG,
            config={"userid": "reseller", "password": "secret"},
        )
        credentials = installed.credentials
        handle, credentials_file = tempfile.mkstemp(suffix=".json")
        os.close(handle)
        stack.callback(Path(credentials_file).unlink, missing_ok=True)
        await asyncio.to_thread(
            Path(credentials_file).write_text, json.dumps(credentials), encoding="utf-8"
        )
        # The cell's log goes to a file: a benchmark's stdout carries one JSON line only.
        cell_log = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - the stack closes it
        cell = await asyncio.create_subprocess_exec(
            *cell_command(Path(credentials_file)),
            cwd=cell_cwd,
            env={**os.environ, **env},
            stdout=cell_log,
            stderr=asyncio.subprocess.STDOUT,
        )
        stack.push_async_callback(_stop, cell)

        create = f"{gateway}/v1/cells/{WS}:{CELL_SLUG}/plugins/{ACTION}/create"
        for n in range(CONCURRENCY):
            await first_answer(client, create, {"payload": {"domain": _domain(n), "years": 1}})
        ledger, flows = await webhook_load(
            stack,
            client,
            runtime=runtime,
            workspace=WS,
            database_url=database_url,
            schema_suffix=SCHEMA_SUFFIX,
            concurrency=CONCURRENCY,
        )

        async def fetch(http: httpx.AsyncClient, key: int) -> httpx.Response:
            return await http.post(
                f"{gateway}/v1/cells/{WS}:{CELL_SLUG}/plugins/{ACTION}/fetch",
                json={"payload": {"domain": _domain(key)}},
            )

        def fetched(key: int, response: httpx.Response) -> bool:
            if response.status_code != 200:
                return False
            # A reply meant for another caller would carry another domain.
            return bool(response.json()["result"]["domain"] == _domain(key))

        user = mint_token(
            settings, subject="billia", roles=[Role.user], workspaces=[WS], ttl_seconds=3600
        )
        requests = Caller(
            "gateway",
            fetch,
            fetched,
            concurrency=CONCURRENCY,
            headers={"Authorization": f"Bearer {user}"},
        )
        flows.start()
        requests.start()
        try:
            await until(lambda: len(flows.calls.accepted()) >= 30, 60)
            await until(lambda: len(requests.calls.accepted()) >= 30, 60)

            stopping = time.monotonic()
            await broker.stop_app()
            stopped = time.monotonic()
            down_statuses = await _all_not_ready(cluster)
            ping_ids = [
                await _ping(client, cluster[service].url)
                for service in list(SERVICE_PACKAGES)[:pings]
            ]
            await asyncio.sleep(max(0.0, outage_seconds - (time.monotonic() - stopped)))
            await broker.start_app()
            restarted = time.monotonic()
            before_restart = flows.calls.accepted()

            async def all_ready() -> bool:
                return all(status == 200 for status in (await readiness(cluster)).values())

            async def drained() -> bool:
                done = set(await ledger.completions()) | set(await ledger.unprocessed())
                return before_restart <= done

            logged_before = sum((await ledger.completions()).values())

            async def flow_progress() -> bool:
                return sum((await ledger.completions()).values()) > logged_before

            ready_after, first_completion, drained_after = await asyncio.gather(
                wait_for(all_ready, 90),
                wait_for(flow_progress, 90, interval=0.05),
                wait_for(drained, 90),
            )
            # Consumers and publishers are back for good: work goes through again, both ways.
            await until(lambda: flows.calls.successes_after(restarted) >= 30, 60)
            await until(lambda: requests.calls.successes_after(restarted) >= 30, 60)
        finally:
            await flows.stop()
            await requests.stop()

        accepted = flows.calls.accepted()

        schemas = [schema_of(service, SCHEMA_SUFFIX) for service in SERVICE_PACKAGES]
        await settle(ledger, accepted, database_url, schemas)
        receipts = [await _receipts(client, cluster, ping_id) for ping_id in ping_ids]
        first_reply = requests.calls.first_success_after(restarted)
        completions = await ledger.completions()
        unprocessed = await ledger.unprocessed()
        return OutageReport(
            outage_seconds=restarted - stopping,
            flows=tally_flow(flows.calls, completions, unprocessed),
            gateway=tally_requests(requests.calls),
            pings_sent=len(ping_ids),
            pings_received_everywhere=sum(
                1 for senders in receipts if set(senders) == set(SERVICE_PACKAGES)
            ),
            ping_receipts_duplicated=sum(len(senders) - len(set(senders)) for senders in receipts),
            unpublished_outbox=await unpublished_outbox_rows(database_url, schemas),
            readiness_down=down_statuses,
            readiness_after=await readiness(cluster),
            statuses_during_outage={
                "hooks": flows.calls.statuses(stopped, restarted),
                "gateway": requests.calls.statuses(stopped, restarted),
            },
            slowest_refusal_seconds=max(
                flows.calls.slowest_refusal(stopped, restarted),
                requests.calls.slowest_refusal(stopped, restarted),
            ),
            first_flow_completion_seconds=first_completion,
            first_gateway_reply_seconds=None if first_reply is None else first_reply - restarted,
            backlog_drained_seconds=drained_after,
            all_ready_seconds=ready_after,
            stopped_at=stopped,
            restarted_at=restarted,
            lost_flow_keys=sorted(accepted - set(completions) - set(unprocessed)),
            error_logs=error_lines(cluster.values()),
            flow_calls=flows.calls,
            gateway_calls=requests.calls,
        )


async def _all_not_ready(cluster: Mapping[str, ServiceProcess]) -> dict[str, int | None]:
    """Every service's /readyz once all have noticed the broker is gone (or after 15 s)."""
    statuses: dict[str, int | None] = {}

    async def down() -> bool:
        statuses.update(await readiness(cluster))
        return all(status == 503 for status in statuses.values())

    await wait_for(down, 15, interval=0.1)
    return statuses


async def _ping(client: httpx.AsyncClient, url: str) -> str:
    """A ping written to the service's outbox while the broker is away (the database is up, so
    the request itself succeeds); the relay must deliver it once the broker is back."""
    sent = await client.post(f"{url}/v1/diagnostics/pings")
    sent.raise_for_status()
    return str(sent.json()["ping_id"])


async def _receipts(
    client: httpx.AsyncClient, cluster: Mapping[str, ServiceProcess], ping_id: str
) -> list[str]:
    """Which services recorded the ping (one entry per receipt, so duplicates show)."""
    receivers: list[str] = []

    async def everywhere() -> bool:
        receivers.clear()
        for service, process in cluster.items():
            answer = await client.get(f"{process.url}/v1/diagnostics/pings/{ping_id}")
            if answer.status_code == 200:
                receivers.extend(service for _ in answer.json()["receipts"])
        return set(receivers) == set(SERVICE_PACKAGES)

    await wait_for(everywhere, 30, interval=0.2)
    return receivers


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
