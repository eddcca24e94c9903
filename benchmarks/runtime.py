"""The runtime under load: a three-node flow of core components (transform → http → log) fed
20,000 messages straight onto the work queue, once with no failures and once with 10% of the HTTP
calls failing once (503, retried through the 1 s delay tier). Targets (issue 23): ≥ 2,500 node
executions/s with one runtime process, ≥ 85% of that with failures, and every message logged
exactly once (counted, and said so). CPU per execution is split between the runtime, RabbitMQ
and PostgreSQL, measured in the same window. A run lasts from its first publish to its last log
row (PostgreSQL's timestamp: the poll that notices it is up to half a second late). The pair is
made twice, the second time in reverse (clean, failing, failing, clean), and the share is taken
over both: the two cores are shared, and a drift over the minute then weighs on both sides.

Then latency under a steady load (open loop): the same flow behind a webhook trigger, fed at a
fixed rate at 25, 50 and 75 % of the most the webhook-fed flow sustained in the same run (the
honest base: the queue-fed maximum leaves out the webhook's own cost), p50/p95/p99 from each 202
to the last node's log row; target p99 < 50 ms at 50 %. The load generator is http_load's lean
connection (httptools), so that the client does not eat the cores.

Last, scale-out: the clean run again with a second runtime process on the same queues, and the
ratio of the two (on two shared cores this shows contention, not a speed-up).

The runtime runs with ``MODYARD_EGRESS_ALLOW_LOOPBACK=true`` because the flow's ``core.http``
node calls a server on 127.0.0.1 (the benchmark may not leave the machine), which the default
policy refuses. That does not flatter the figure: the policy check still runs for every call (the
URL is parsed, the address resolved and checked against the platform's endpoints and the
workspace's allow-list); only its verdict for loopback changes.

``MODYARD_BENCH_RUNTIME_MESSAGES`` lowers the message count for quick iterations (e.g. 4000);
published figures use the default (``MODYARD_BENCH_RUNTIME_FAIL_EVERY``, 10, likewise);
``MODYARD_BENCH_RUNTIME_PARTS=clean`` (a comma-separated
subset of ``clean,flaky,open_loop,scale_out``) makes only some of the runs. ``MODYARD_BENCH_RUNTIME_PROFILE=<dir>`` records a py-spy
profile (raw, for flame graphs) of each runtime process during the clean and the failing runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import httpx

from benchmarks.flow_load import CpuSplit, publish_work, wait_for_node_logs
from benchmarks.http_load import _Connection
from benchmarks.process_stats import py_spy_record
from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.testing.services import ServiceProcess, auth_headers, service_process

MESSAGES = int(os.environ.get("MODYARD_BENCH_RUNTIME_MESSAGES", "20000"))
NODES = 3
TARGET = 2500
#: The failing run's rate over the clean run's (issue 23).
FAILING_SHARE_TARGET = 0.85
PROFILE_DIR = os.environ.get("MODYARD_BENCH_RUNTIME_PROFILE")
#: Which runs to make (a comma-separated subset for quick iterations).
PARTS = frozenset(
    os.environ.get("MODYARD_BENCH_RUNTIME_PARTS", "clean,flaky,open_loop,scale_out").split(",")
)
#: The open loop's rates, as shares of the webhook-fed maximum, and how long each lasts.
OPEN_LOOP_LEVELS = (0.25, 0.5, 0.75)
#: Keep-alive connections the load generator may hold (the maximum's closed loops, too).
OPEN_LOOP_CONNECTIONS = 32
OPEN_LOOP_SECONDS = float(os.environ.get("MODYARD_BENCH_RUNTIME_OPEN_LOOP_SECONDS", "10"))
SCHEMA = "runtime_bench"
#: The failing run's first call fails for every FAIL_EVERY-th message (10: the issue's 10 %; 2,
#: half of them, gives five times the failures to measure what one costs).
FAIL_EVERY = int(os.environ.get("MODYARD_BENCH_RUNTIME_FAIL_EVERY", "10"))


class FlakyServer:
    """Answers 200, except the first call for every tenth id, which gets a 503."""

    def __init__(self, fail_every: int | None) -> None:
        self.fail_every = fail_every
        self.failed: set[int] = set()
        self.calls = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    path = head.split(b" ", 2)[1].decode()
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                    body = await reader.readexactly(length) if length else b"{}"
                    self.calls += 1
                    number = int(path.rsplit("/", 1)[-1])
                    fail = (
                        self.fail_every is not None
                        and number % self.fail_every == 0
                        and number not in self.failed
                    )
                    if fail:
                        self.failed.add(number)
                    status = b"503 Service Unavailable" if fail else b"200 OK"
                    # The request body comes back, so the message's number travels on.
                    writer.write(
                        b"HTTP/1.1 "
                        + status
                        + b"\r\nContent-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


async def _start_flow(
    client: httpx.AsyncClient, runtime_url: str, http_port: int, *, webhook: bool
) -> str:
    """The benchmark's flow (transform → http → log, behind a webhook trigger when ``webhook``),
    created and started; its id."""
    nodes: dict[str, Any] = {
        "shape": {
            "component": "core.transform",
            "properties": {"mapping": {"n": "{{ payload.n }}", "sent": "{{ payload.sent }}"}},
        },
        "call": {
            "component": "core.http",
            "properties": {
                "method": "POST",
                "url": f"http://127.0.0.1:{http_port}/n/{{{{ payload.n }}}}",
                "body": "{{ payload }}",
            },
        },
        "sink": {
            "component": "core.log",
            "properties": {"message": {"n": "{{ payload.body.n }}"}},
        },
    }
    connections = [{"from": "shape", "to": "call"}, {"from": "call", "to": "sink"}]
    if webhook:
        nodes["hook"] = {"component": "core.webhook", "properties": {}}
        connections.append({"from": "hook", "to": "shape"})
    definition = {
        "nodes": nodes,
        "connections": connections,
        "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 5},
    }
    created = await client.post(
        f"{runtime_url}/v1/workspaces/bench/flows",
        json={"name": f"bench-{uuid.uuid4().hex[:6]}", "definition": definition},
    )
    created.raise_for_status()
    flow_id = str(created.json()["id"])
    (
        await client.post(f"{runtime_url}/v1/workspaces/bench/flows/{flow_id}/start")
    ).raise_for_status()
    return flow_id


async def _run(
    infra: IsolatedInfra,
    client: httpx.AsyncClient,
    runtimes: list[ServiceProcess],
    fail_every: int | None,
) -> dict[str, Any]:
    runtime_url = runtimes[0].url
    server = FlakyServer(fail_every)
    await server.start()
    flow_id = await _start_flow(client, runtime_url, server.port, webhook=False)

    connection = await aio_pika.connect(infra.amqp_url)
    database = await asyncpg.connect(
        asyncpg_dsn(infra.database_url), server_settings={"search_path": SCHEMA}
    )
    cpu = CpuSplit([runtime.process.pid for runtime in runtimes])
    try:
        profilers = (
            await _profile(runtimes, "queue" if fail_every is None else "queue-failing")
            if PROFILE_DIR
            else []
        )
        scans_before = await _scans(database)
        await cpu.start(database)
        started = time.perf_counter()
        started_at = time.time()  # the clock PostgreSQL's logged_at reads, for the run's end
        async with connection:
            await publish_work(
                connection, "bench", flow_id, MESSAGES, lambda n: {"n": n, "sent": time.time()}
            )
        logged = await wait_for_node_logs(database, flow_id, MESSAGES, poll_seconds=0.5)
        elapsed = time.perf_counter() - started
        await cpu.stop(database)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its profile and exits
            await profiler.wait()
        scans = await _scans_since(database, scans_before)
        distinct = await database.fetchval(
            "SELECT count(DISTINCT entry->>'n') FROM node_logs WHERE flow_id = $1",
            uuid.UUID(flow_id),
        )
        # Joined here, not in SQL: the tables were never analyzed, and PostgreSQL's plan for
        # a join on these JSON expressions was then a nested loop (minutes at 20,000 x 60,000).
        sent = {
            row[0]: row[1]
            for row in await database.fetch(
                """SELECT outputs->'out'->0->>'n', (outputs->'out'->0->>'sent')::float
                    FROM node_executions WHERE flow_id = $1 AND node_id = 'shape'""",
                uuid.UUID(flow_id),
            )
        }
        rows = await database.fetch(
            """SELECT entry->>'n', extract(epoch FROM logged_at)::float
                FROM node_logs WHERE flow_id = $1""",
            uuid.UUID(flow_id),
        )
        latencies = [row[1] - sent[row[0]] for row in rows if row[0] in sent]
        logged_times = sorted(row[1] for row in rows)
        unprocessed = await database.fetchval(
            "SELECT count(*) FROM unprocessed_messages WHERE flow_id = $1",
            uuid.UUID(flow_id),
        )
    finally:
        await database.close()
        await server.stop()
    await client.post(f"{runtime_url}/v1/workspaces/bench/flows/{flow_id}/stop")
    latencies.sort()
    executions = logged * NODES + len(server.failed)
    # The run ends with its last log row (PostgreSQL's own time), not when the 0.5 s poll saw it.
    last = logged_times[-1] if logged_times else started_at + elapsed
    seconds = max(last - started_at, 1e-3)
    return {
        "messages": MESSAGES,
        "logged": logged,
        "logged_exactly_once": distinct == MESSAGES and logged == MESSAGES,
        "lost": MESSAGES - distinct,
        "duplicates": logged - distinct,
        "unprocessed": unprocessed,
        "failed_once": len(server.failed),
        "seconds": round(seconds, 2),
        "node_executions_per_second": round(executions / seconds),
        # What one execution costs each party, whatever else runs on the machine (RabbitMQ's
        # and PostgreSQL's shared processes also serve the neighbours: an upper bound).
        **cpu.per_execution_ms(executions),
        "ledger_scans": {name: n for name, n in scans.items() if name != "commits"},
        # Statements the database committed (the worker's are single statements outside a
        # transaction, so this counts its round trips), per message: a failure's share shows.
        "commits_per_message": round(scans.get("commits", 0) / MESSAGES, 3),
        "end_to_end_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "end_to_end_p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1)
        if latencies
        else None,
    }


async def _scans(database: asyncpg.Connection) -> dict[str, int]:
    """The ledger table's scans and the database's commits so far (pg_stat_user_tables,
    pg_stat_database: a backend reports its counts within a second of its transaction, so a
    reading a second after the run's end is complete)."""
    row = await database.fetchrow(
        """SELECT seq_scan, seq_tup_read, idx_scan,
                (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
                    AS commits
            FROM pg_stat_user_tables
            WHERE schemaname = $1 AND relname = 'node_executions'""",
        SCHEMA,
    )
    return dict(row) if row is not None else {}


async def _scans_since(database: asyncpg.Connection, before: dict[str, int]) -> dict[str, int]:
    """What the run did to the ledger: a sequential scan there is a plan chosen on an empty
    table's statistics (docs/runtime.md, the PostgreSQL spike), not a slow machine."""
    await asyncio.sleep(1.1)  # the backends' counts flushed
    after = await _scans(database)
    return {name: after[name] - before.get(name, 0) for name in after}


async def _profile(
    runtimes: list[ServiceProcess], run: str = "queue"
) -> list[asyncio.subprocess.Process]:
    """py-spy recording each runtime process until it is interrupted."""
    assert PROFILE_DIR is not None
    named = {f"runtime-{run}-{index}": r.process.pid for index, r in enumerate(runtimes)}
    return await py_spy_record(PROFILE_DIR, named)


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[max(0, int(len(ordered) * fraction + 0.5) - 1)] * 1000, 1)


async def _post_at_rate(
    runtime_url: str,
    path: str,
    first: int,
    count: int,
    rate: float | None,
    connections: int = OPEN_LOOP_CONNECTIONS,
) -> tuple[dict[int, float], int, float]:
    """POSTs ``{"n", "sent"}`` bodies for ``n`` in ``first…first+count-1`` at ``rate`` per
    second on a fixed schedule (open loop: a slow answer delays no later request; a request
    whose time has come takes an idle keep-alive connection or opens one, up to
    ``connections``); ``rate=None``: as fast as ``connections`` closed loops go. The wall-clock
    time each 202 arrived, by ``n``; how many were not accepted; the client's CPU seconds."""
    target = urlsplit(runtime_url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    loop = asyncio.get_running_loop()
    idle: list[_Connection] = []
    accepted: dict[int, float] = {}
    refused = 0
    reasons: Counter[str] = Counter()
    in_flight: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(connections)

    async def fire(n: int, connection: _Connection) -> None:
        try:
            await send(n, connection)
        finally:
            slots.release()

    async def send(n: int, connection: _Connection) -> None:
        nonlocal refused
        body = json.dumps({"n": n, "sent": time.time()}).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {target.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            response = await connection.request(request, timeout=30)
        except (ConnectionError, TimeoutError) as exc:
            refused += 1
            reasons[f"{type(exc).__name__}: {exc}"[:120]] += 1
            return
        if response.status == 202:
            accepted[n] = time.time()
        else:
            refused += 1
            reasons[f"{response.status}: {response.body[:200]!r}"] += 1
        if connection.usable:
            idle.append(connection)

    cpu = time.process_time()
    started = time.perf_counter()
    for index in range(count):
        if rate is not None:
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await slots.acquire()  # never more than ``connections`` requests at once
        # An idle connection the server closed meanwhile (uvicorn's keep-alive ends after 5 s:
        # after a burst, the connections at the bottom of the stack wait that long) is left; a
        # request written to it was never read and counted, 30 s later, as not accepted.
        while idle and not idle[-1].usable:
            idle.pop()
        if idle:
            connection = idle.pop()
        else:
            _, connection = await loop.create_connection(_Connection, host, port)
        task = asyncio.create_task(fire(first + index, connection))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    for connection in idle:
        connection.close()
    if reasons:  # said, so that a lost request can be told from a client artefact
        print(f"runtime open loop: not accepted: {dict(reasons)}", file=sys.stderr, flush=True)
    return accepted, refused, time.process_time() - cpu


async def _open_loop(
    infra: IsolatedInfra, client: httpx.AsyncClient, runtime: ServiceProcess
) -> dict[str, Any]:
    """Messages through the flow's webhook at a fixed rate, at 25, 50 and 75 % of the most the
    webhook-fed flow sustained (measured first, in the same run, with the webhook's own cost in
    it: the honest base, not the queue-fed maximum); latency from each 202 to the last node's
    log row (PostgreSQL's ``now()`` of the recording statement, same machine clock)."""
    server = FlakyServer(None)
    await server.start()
    flow_id = await _start_flow(client, runtime.url, server.port, webhook=True)
    path = f"/v1/hooks/bench/{flow_id}/hook"
    database = await asyncpg.connect(
        asyncpg_dsn(infra.database_url), server_settings={"search_path": SCHEMA}
    )
    try:
        # The webhook-fed maximum: as fast as the runtime accepts and runs them.
        base_count = max(1000, MESSAGES // 4)
        cpu = CpuSplit([runtime.process.pid])
        profilers = await _profile([runtime], "webhook") if PROFILE_DIR else []
        await cpu.start(database)
        started = time.perf_counter()
        accepted, refused, _ = await _post_at_rate(runtime.url, path, 0, base_count, None)
        base_refused = refused
        await wait_for_node_logs(database, flow_id, len(accepted), poll_seconds=0.2)
        maximum = len(accepted) / (time.perf_counter() - started)
        await cpu.stop(database)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            await profiler.wait()
        # Per node execution, as the queue-fed runs report it (the webhook's own work included).
        webhook_fed_cpu = cpu.per_execution_ms(len(accepted) * NODES)
        levels = []
        sent = base_count
        expected = len(accepted)
        for share in OPEN_LOOP_LEVELS:
            rate = maximum * share
            count = max(200, int(rate * OPEN_LOOP_SECONDS))
            accepted, refused, client_cpu = await _post_at_rate(
                runtime.url, path, sent, count, rate
            )
            sent += count
            expected += len(accepted)
            await wait_for_node_logs(database, flow_id, expected, poll_seconds=0.2)
            logged = {
                int(row["n"]): float(row["at"])
                for row in await database.fetch(
                    """SELECT (entry->>'n')::int AS n, extract(epoch FROM logged_at) AS at
                        FROM node_logs WHERE flow_id = $1 AND (entry->>'n')::int >= $2""",
                    uuid.UUID(flow_id),
                    sent - count,
                )
            }
            latencies = sorted(logged[n] - at for n, at in accepted.items() if n in logged)
            levels.append(
                {
                    "share_of_maximum": share,
                    "messages_per_second": round(rate, 1),
                    "node_executions_per_second": round(rate * NODES),
                    "messages": count,
                    "accepted": len(accepted),
                    "not_accepted": refused,
                    "logged": len(latencies),
                    "p50_ms": _percentile(latencies, 0.50),
                    "p95_ms": _percentile(latencies, 0.95),
                    "p99_ms": _percentile(latencies, 0.99),
                    "client_cpu_ms_per_message": round(client_cpu * 1000 / count, 3),
                }
            )
    finally:
        await database.close()
        await server.stop()
    await client.post(f"{runtime.url}/v1/workspaces/bench/flows/{flow_id}/stop")
    half = next(level for level in levels if level["share_of_maximum"] == 0.5)
    return {
        "webhook_fed_maximum_messages_per_second": round(maximum, 1),
        "webhook_fed_maximum_node_executions_per_second": round(maximum * NODES),
        "webhook_fed_not_accepted": base_refused,
        "webhook_fed_cpu": webhook_fed_cpu,
        "levels": levels,
        "target_p99_ms_at_half": 50,
        "target_met": half["p99_ms"] is not None and half["p99_ms"] < 50,
    }


async def runtime_load(infra: IsolatedInfra) -> dict[str, Any]:
    headers = auth_headers(CommonSettings(), Role.operator)
    env = {
        **infra.env(),
        "MODYARD_RUNTIME_DB_SCHEMA": SCHEMA,
        "MODYARD_RUNTIME_LOG_LEVEL": "WARNING",
        # core.http calls the benchmark's server on 127.0.0.1; the policy check still runs.
        "MODYARD_EGRESS_ALLOW_LOOPBACK": "true",
    }
    clean = flaky = again_clean = again_flaky = open_loop = two = None
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(service_process("runtime", env))
        client = await stack.enter_async_context(httpx.AsyncClient(headers=headers, timeout=60))
        if "clean" in PARTS or "scale_out" in PARTS:
            clean = await _run(infra, client, [first], None)
        if "flaky" in PARTS:
            flaky = await _run(infra, client, [first], FAIL_EVERY)
            if clean is not None:
                # The same pair again in reverse (failing, then clean): a drift of the shared
                # machine over the minute weighs on both sides of the share alike.
                again_flaky = await _run(infra, client, [first], FAIL_EVERY)
                again_clean = await _run(infra, client, [first], None)
        if "open_loop" in PARTS:
            open_loop = await _open_loop(infra, client, first)
        if "scale_out" in PARTS:
            # A second replica on the same work queue, as runtime pods scale.
            second = await stack.enter_async_context(service_process("runtime", env))
            two = await _run(infra, client, [first, second], None)
    scale_out = (
        {
            "clean_two_processes": two,
            "ratio_to_one": round(
                two["node_executions_per_second"] / clean["node_executions_per_second"], 2
            ),
        }
        if two is not None and clean is not None
        else None
    )
    share = _failing_share([clean, again_clean], [flaky, again_flaky])
    return {
        "benchmark": "runtime",
        "flow": "transform → http → log",
        "runtime_processes": 1,
        "clean": clean,
        "ten_percent_failing_once": flaky,
        "open_loop": open_loop,
        "scale_out": scale_out,
        "again": {"ten_percent_failing_once": again_flaky, "clean": again_clean},
        "failing_share": share,
        "target_executions_per_second": TARGET,
        "targets_met": clean is not None
        and flaky is not None
        and clean["node_executions_per_second"] >= TARGET
        and share is not None
        and share["both_pairs"] >= FAILING_SHARE_TARGET
        and all(
            part["logged_exactly_once"]
            for part in (clean, flaky, again_clean, again_flaky)
            if part is not None
        ),
    }


def _failing_share(
    cleans: list[dict[str, Any] | None], flakies: list[dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The failing runs' rate over the clean runs', per pair and over both pairs (clean, failing,
    failing, clean: a linear drift of the machine cancels out of the second figure)."""
    pairs = [
        (clean, flaky)
        for clean, flaky in zip(cleans, flakies, strict=True)
        if clean is not None and flaky is not None
    ]
    if not pairs:
        return None

    def rate(part: dict[str, Any]) -> float:
        return float(part["node_executions_per_second"])

    return {
        "pairs": [round(rate(flaky) / rate(clean), 3) for clean, flaky in pairs],
        "both_pairs": round(
            sum(rate(flaky) for _, flaky in pairs) / sum(rate(clean) for clean, _ in pairs), 3
        ),
        "target": FAILING_SHARE_TARGET,
    }
