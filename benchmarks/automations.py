"""Automations under load: an endpoint-triggered automation of 10 instructions (sets, a condition,
a three-item loop, a delete, an output) called over HTTP by 32 concurrent clients. Reports calls/s,
p50 and p99 latency, and the runtime's CPU per call. Target: ≥ 1,000 calls/s on this machine."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
import httpx

from benchmarks.process_stats import cpu_seconds
from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, service_process

CLIENTS = 32
CALLS = 20_000
WARMUP_CALLS = 500
TARGET_CALLS_PER_SECOND = 1000
SCHEMA = "runtime_automations_bench"
WS = "bench-autos"

#: Ten instructions; every value is a template over the request body or the variables.
AUTOMATION: dict[str, Any] = {
    "when": {"endpoint": True},
    "arguments": {"n": {"type": "integer"}, "items": {"type": "array"}},
    "output": {"n": "{{ result.n }}", "seen": "{{ seen }}", "size": "{{ result.size }}"},
    "do": [
        {"set": {"name": "result.n", "value": "{{ body.n }}"}},
        {"set": {"name": "result.kind", "value": "order"}},
        {
            "conditions": {
                "{{ body.n }} > 100": [{"set": {"name": "result.size", "value": "big"}}],
                "default": [{"set": {"name": "result.size", "value": "small"}}],
            }
        },
        {
            "repeat": {
                "on": "{{ body.items }}",
                "do": [{"set": {"name": "seen", "value": "{{ item }}", "type": "push"}}],
            }
        },
        {"set": {"name": "tmp", "value": {"a": "{{ body.n }}", "b": "{{ result.kind }}"}}},
        {"delete": {"name": "tmp.b"}},
        {"set": {"name": "result.label", "value": "order {{ body.n }}"}},
        {"comment": {"text": "nothing to do"}},
        {"set": {"name": "result.done", "value": True}},
        {"delete": {"name": "result.label"}},
    ],
}


async def _load(url: str, headers: dict[str, str], calls: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(calls))
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            for n in counter:
                body = {"n": n, "items": [1, 2, 3]}
                started = time.perf_counter()
                async with session.post(url, json=body) as response:
                    answer = await response.json()
                latencies.append(time.perf_counter() - started)
                if response.status != 200 or answer.get("n") != n:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return latencies, errors, time.perf_counter() - started


async def automations_load(infra: IsolatedInfra) -> dict[str, Any]:
    headers = auth_headers(CommonSettings(), Role.operator)
    env = {
        **infra.env(),
        "MODYARD_RUNTIME_DB_SCHEMA": SCHEMA,
        "MODYARD_RUNTIME_LOG_LEVEL": "WARNING",
    }
    async with service_process("runtime", env) as runtime:
        async with httpx.AsyncClient(headers=headers, timeout=60) as client:
            saved = await client.put(
                f"{runtime.url}/v1/workspaces/{WS}/automations/order", json=AUTOMATION
            )
            saved.raise_for_status()
        url = f"{runtime.url}/v1/workspaces/{WS}/endpoints/order"
        await _load(url, headers, WARMUP_CALLS)
        cpu_before = cpu_seconds(runtime.process.pid)
        latencies, errors, elapsed = await _load(url, headers, CALLS)
        cpu_used = cpu_seconds(runtime.process.pid) - cpu_before
    latencies.sort()
    calls_per_second = round(CALLS / elapsed)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    return {
        "benchmark": "automations",
        "automation": "endpoint, 10 instructions (set, conditions, repeat over 3 items, delete, output)",
        "clients": CLIENTS,
        "calls": CALLS,
        "errors": errors,
        "seconds": round(elapsed, 2),
        "calls_per_second": calls_per_second,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(p99, 2),
        "runtime_cpu_ms_per_call": round(cpu_used * 1000 / CALLS, 3),
        "target_calls_per_second": TARGET_CALLS_PER_SECOND,
        "targets_met": calls_per_second >= TARGET_CALLS_PER_SECOND and errors == 0,
    }
