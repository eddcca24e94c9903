"""The AppCell gateway under load, against the floor cost of one AMQP round trip on this machine.

(a) a raw aio-pika request/reply echo loop: 32 concurrent callers, an echo responder in its own
    process, replies correlated by id on an exclusive reply queue;
(b) HTTP → gateway → cell → gateway → HTTP: 32 concurrent HTTP clients calling the example cell's
    ``fetch`` action (payload and result both validated, the result through a ``$ref``), the
    registry, installer and gateway as real processes and the cell run by ``modyard cell run``;
    the load generator is ``benchmarks.http_load`` (keep-alive connections on asyncio Protocols,
    httptools parsing): on two shared cores every bit of the client's CPU is taken from the
    gateway and the cell, so it stays lean, and (b) reports its CPU per request.

20,000 requests each (``MODYARD_BENCH_GATEWAY_REQUESTS`` for quicker iterations); req/s, p50,
p95, p99 for both and the ratio b/a. Every reply is checked against its request (lost or
mismatched replies are counted). Targets (issue 23): b/a ≥ 1.5, p99 of (b) < 20 ms, nothing lost
or mismatched; the line says which are met.

The CPU each process spends per request of (b) (gateway, cell, RabbitMQ's ``beam.smp``, the load
generator) is in the line too: on two shared cores it is what the latency is made of, and unlike
req/s it barely moves with the neighbours' load. ``MODYARD_BENCH_GATEWAY_PROFILE=<dir>`` records
py-spy profiles (raw, for flame graphs) of the gateway and the cell during (b).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from benchmarks import http_load
from benchmarks.process_stats import cpu_seconds, py_spy_record
from examples.resellerclub_cell.module_archive import module_zip
from examples.resellerclub_cell.process import CWD, cell_command
from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings
from modyard.testing.cells import first_answer, install_cell
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, service_process

REQUESTS = int(os.environ.get("MODYARD_BENCH_GATEWAY_REQUESTS", "20000"))
PROFILE_DIR = os.environ.get("MODYARD_BENCH_GATEWAY_PROFILE")
#: A file to write (b)'s requests to, one ``sent_seconds latency_ms`` line each: where the slow
#: ones fall in time.
TIMELINE = os.environ.get("MODYARD_BENCH_GATEWAY_TIMELINE")
CLIENTS = 32
RATIO_TARGET = 1.5
P99_TARGET_MS = 20
WS = "bench"

ECHO_RESPONDER = """
import asyncio, sys, aio_pika, uvloop
async def main():
    connection = await aio_pika.connect(sys.argv[1])
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=64)
    queue = await channel.declare_queue(sys.argv[2], auto_delete=True)
    async def on_message(message):
        await channel.default_exchange.publish(
            aio_pika.Message(message.body, correlation_id=message.correlation_id),
            routing_key=message.reply_to)
        await message.ack()
    await queue.consume(on_message)
    print("ready", flush=True)
    await asyncio.Future()
uvloop.install()
asyncio.run(main())
"""


def _figures(latencies: list[float], elapsed: float, lost: int, mismatched: int) -> dict[str, Any]:
    latencies.sort()
    count = len(latencies)
    return {
        "requests": REQUESTS,
        "answered": count,
        "lost": lost,
        "mismatched": mismatched,
        "seconds": round(elapsed, 2),
        "requests_per_second": round(count / elapsed),
        "p50_ms": round(latencies[count // 2] * 1000, 2) if count else None,
        # The shape of the tail: steady queueing (p90 near p99) or rare stalls (a far max).
        "p90_ms": _percentile(latencies, 0.90),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": round(latencies[-1] * 1000, 2) if count else None,
    }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(0, int(len(ordered) * fraction) - 1)] * 1000, 2)


async def _raw_echo(infra: IsolatedInfra) -> dict[str, Any]:
    queue = f"bench.echo.{uuid.uuid4().hex[:8]}"
    responder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_RESPONDER, infra.amqp_url, queue, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert responder.stdout is not None
        await asyncio.wait_for(responder.stdout.readline(), 30)
        connection = await aio_pika.connect(infra.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=False)
            replies = await channel.declare_queue(exclusive=True)
            pending: dict[str, asyncio.Future[bytes]] = {}

            async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                future = pending.pop(message.correlation_id or "", None)
                if future is not None and not future.done():
                    future.set_result(message.body)

            await replies.consume(on_reply, no_ack=True)
            latencies: list[float] = []
            mismatched = lost = 0
            counter = iter(range(REQUESTS))

            async def client() -> None:
                nonlocal mismatched, lost
                for n in counter:
                    correlation_id = uuid.uuid4().hex
                    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
                    pending[correlation_id] = future
                    body = json.dumps({"n": n}).encode()
                    started = time.perf_counter()
                    await channel.default_exchange.publish(
                        aio_pika.Message(
                            body, correlation_id=correlation_id, reply_to=replies.name
                        ),
                        routing_key=queue,
                    )
                    try:
                        answer = await asyncio.wait_for(future, 10)
                    except TimeoutError:
                        lost += 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    if answer != body:
                        mismatched += 1

            with http_load.collector_paused():  # the same instrument as (b)'s
                started = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(CLIENTS)))
                elapsed = time.perf_counter() - started
            return _figures(latencies, elapsed, lost, mismatched)
    finally:
        responder.terminate()
        await responder.wait()


async def _through_gateway(gateway_url: str, token: str, domains: list[str]) -> dict[str, Any]:
    # benchmarks.http_load as the load generator, not aiohttp: on two shared cores the client's
    # CPU is taken from the gateway and the cell, and it costs a fraction of aiohttp's per request.
    path = f"/v1/cells/{WS}:rc/plugins/NewResellerClub/actions/fetch"
    load = await http_load.run(gateway_url, path, token, domains, REQUESTS, timeout=30)
    if TIMELINE:
        first = min(load.starts, default=0.0)
        Path(TIMELINE).write_text(  # noqa: ASYNC240 - after the load
            f"# sent_seconds latency_ms; 0 is perf_counter {first:.6f} (CLOCK_MONOTONIC)\n"
            + "".join(
                f"{start - first:.6f} {latency * 1000:.3f}\n"
                for start, latency in zip(load.starts, load.latencies, strict=True)
            )
        )
    figures = _figures(load.latencies, load.elapsed, load.lost, load.mismatched)
    figures["load_generator_cpu_ms_per_request"] = round(
        load.cpu_seconds * 1000 / max(1, load.answered), 3
    )
    return figures


async def gateway_load(infra: IsolatedInfra) -> dict[str, Any]:
    settings = CommonSettings()
    operator = auth_headers(settings, Role.operator)
    quiet = {"MODYARD_LOG_LEVEL": "WARNING"}
    floor = await _raw_echo(infra)
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(
            service_process(
                "registry", {**infra.env(), **quiet, "MODYARD_REGISTRY_DB_SCHEMA": "registry_gw"}
            )
        )
        installer = await stack.enter_async_context(
            service_process(
                "installer",
                {
                    **infra.env(),
                    **quiet,
                    "MODYARD_INSTALLER_DB_SCHEMA": "installer_gw",
                    "MODYARD_REGISTRY_URL": registry.url,
                },
            )
        )
        gateway = await stack.enter_async_context(
            service_process(
                "appcell-gateway",
                {
                    **infra.env(),
                    **quiet,
                    "MODYARD_APPCELL_GATEWAY_DB_SCHEMA": "gateway_bench",
                    "MODYARD_REGISTRY_URL": registry.url,
                    "MODYARD_INSTALLER_URL": installer.url,
                },
            )
        )
        client = await stack.enter_async_context(httpx.AsyncClient(headers=operator, timeout=60))
        installed = await install_cell(
            client,
            registry=registry.url,
            installer=installer.url,
            gateway=gateway.url,
            archive=module_zip(),
            workspace=WS,
            slug="rc",
            config={"userid": "reseller", "password": "secret"},
        )
        credentials = installed.credentials
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump(credentials, handle)
        cell = await asyncio.create_subprocess_exec(
            *cell_command(Path(handle.name), "--prefetch", "64", "--concurrency", "64"),
            cwd=CWD,
            env={**os.environ, **quiet},
        )
        try:
            user = mint_token(
                settings, subject="billia", roles=[Role.user], workspaces=[WS], ttl_seconds=3600
            )
            domains = [f"bench-{n}.com" for n in range(CLIENTS)]
            path = f"{gateway.url}/v1/cells/{WS}:rc/plugins/NewResellerClub/actions/create"
            for domain in domains:
                await first_answer(client, path, {"payload": {"domain": domain, "years": 1}})
            processes = {"gateway": gateway.process.pid, "cell": cell.pid}
            if (broker := _broker_pid()) is not None:
                processes["rabbitmq"] = broker
            profilers = await _profile(processes) if PROFILE_DIR else []
            before = {name: cpu_seconds(pid) for name, pid in processes.items()}
            system_before = _system_seconds(gateway.process.pid)
            through = await _through_gateway(gateway.url, user, domains)
            spent = {name: cpu_seconds(pid) - before[name] for name, pid in processes.items()}
            gateway_system = _system_seconds(gateway.process.pid) - system_before
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
                await profiler.wait()
        finally:
            cell.terminate()
            await cell.wait()
            # Broker users outlive the benchmark's vhost: remove the cell's.
            async with httpx.AsyncClient(
                base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
            ) as management:
                await management.delete(f"/api/users/{credentials['username']}")
            Path(handle.name).unlink(missing_ok=True)  # noqa: ASYNC240 - a tiny temp file
    ratio = through["requests_per_second"] / floor["requests_per_second"]
    answered = max(1, through["answered"])
    # What one request costs each process, whatever else shares the cores.
    cpu_ms = {
        f"{name}_cpu_ms_per_request": round(spent[name] * 1000 / answered, 3) for name in spent
    }
    cpu_ms["load_generator_cpu_ms_per_request"] = through.pop("load_generator_cpu_ms_per_request")
    cpu_ms["total_cpu_ms_per_request"] = round(sum(cpu_ms.values()), 3)
    # The kernel's part (on loopback a send also pays the receiver's TCP work): what fewer
    # system calls can save, where the rest is Python.
    cpu_ms["gateway_system_cpu_share"] = round(gateway_system / max(1e-9, spent["gateway"]), 3)
    met = {
        "ratio_b_over_a": ratio >= RATIO_TARGET,
        "p99_ms": (through["p99_ms"] or 1e9) < P99_TARGET_MS,
        "nothing_lost_or_mismatched": through["lost"] == through["mismatched"] == 0
        and floor["lost"] == floor["mismatched"] == 0,
    }
    return {
        "benchmark": "gateway",
        "clients": CLIENTS,
        "raw_amqp_echo": floor,
        "http_gateway_cell": through,
        "ratio_b_over_a": round(ratio, 3),
        **cpu_ms,
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "targets": {"ratio_b_over_a": RATIO_TARGET, "p99_ms": P99_TARGET_MS},
        "target_met": met,
        "targets_met": all(met.values()),
    }


def _system_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def _broker_pid() -> int | None:
    """RabbitMQ's Erlang VM on this machine, if it runs here (its CPU is part of a request's)."""
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "beam.smp":
                return int(stat.parent.name)
        except OSError:
            continue  # the process ended while we looked
    return None


async def _profile(processes: dict[str, int]) -> list[asyncio.subprocess.Process]:
    """py-spy recording each of the Python processes (not RabbitMQ's) until it is interrupted."""
    assert PROFILE_DIR is not None
    python = {name: pid for name, pid in processes.items() if name != "rabbitmq"}
    return await py_spy_record(PROFILE_DIR, python)
