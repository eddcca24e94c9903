"""The JavaScript runner alone (no broker, no flow, no database): what the sandbox hop costs.

- ``calls_per_second``: warm calls of a component that answers at once (``sendJson`` of its
  input), 256 in flight on one child, through ``JsRunner.handle`` (request → frame → Node →
  frame → reply);
- ``added_p50_ms``: one call at a time, the median of the same round trip;
- ``cold_start_p50_ms``: the first call of a new module version (dependencies already there):
  starting ``unshare`` + Node with the permission model, loading the component, the call;
- ``idle_child_rss_mib``: resident memory of an idle child after its calls.

Targets (issue 20): ≥ 10,000 calls/s, < 0.3 ms added p50, cold start p50 < 100 ms, idle child
< 50 MiB.

``slingr``: the same warm and sequential calls of a Slingr flow step that returns its inputs
(issue 21, docs/slingr.md: worker threads of the child behind the Atomics bridge, with the
default ``SLINGR_WORKERS``), in the same run; ``slingr_to_appmixer`` compares the warm rates
(target ≥ 0.5).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from modyard.jsrunner.http_bridge import HttpBridge
from modyard.jsrunner.isolation import probe
from modyard.jsrunner.modules import ModuleStore
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.registry_client import RegistryClient
from modyard.jsrunner.runner import JsRunner
from modyard.jsrunner.sandbox import rss_bytes
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.testing.infra import IsolatedInfra

ECHO = """
module.exports = { async receive(context) {
    await context.sendJson(context.messages.in.content, 'out');
} };
"""
WARM_CALLS = 20_000
IN_FLIGHT = 256
SEQUENTIAL = 2_000
COLD_STARTS = 15


def _module(runner: JsRunner, root: Path, name: str) -> None:
    folder = root / name / "Echo"
    folder.mkdir(parents=True)
    (folder / "Echo.js").write_text(ECHO)
    manifest = {
        "name": name,
        "components": [
            {
                "name": f"{name}.Echo",
                "executor": {"type": "js", "entrypoint": "Echo/Echo.js"},
            }
        ],
    }
    runner.store.add_directory(name, "1.0.0", root / name, manifest)


SLINGR_STEP = """step.echo = function (inputs) {
    return {n: inputs.n};
};
"""


def _slingr_package(runner: JsRunner, root: Path, name: str) -> None:
    folder = root / name / "flowSteps" / "echo"
    folder.mkdir(parents=True)
    (folder / "step.js").write_text(SLINGR_STEP)
    descriptor = {"name": name, "metadata": [{"type": "flowStep", "path": "/flowSteps/echo"}]}
    (root / name / "package.json").write_text(json.dumps(descriptor))
    manifest = {
        "name": name,
        "format": "slingr",
        "components": [
            {"name": "echo", "executor": {"type": "js", "entrypoint": "flowSteps/echo/step.js"}}
        ],
    }
    runner.store.add_directory(name, "1.0.0", root / name, manifest)


async def _rates(runner: JsRunner, request: Any) -> tuple[float, list[float]]:
    """Warm calls/s with IN_FLIGHT at once, and the sequential round trips."""
    await runner.handle(request(0))
    latencies = []
    for n in range(SEQUENTIAL):
        began = time.perf_counter()
        await runner.handle(request(n))
        latencies.append(time.perf_counter() - began)
    semaphore = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with semaphore:
            reply = await runner.handle(request(n))
            assert "outputs" in reply, reply

    began = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(WARM_CALLS)))
    return WARM_CALLS / (time.perf_counter() - began), latencies


def _request(name: str, n: int) -> dict[str, Any]:
    return {
        "module": name,
        "version": "1.0.0",
        "component": f"{name}.Echo",
        "port": "in",
        "payload": {"n": n},
    }


async def js_runner_load(_infra: IsolatedInfra) -> dict[str, Any]:
    settings = JsRunnerSettings(log_level="WARNING", max_calls_per_child=10_000_000)
    isolation = await probe(settings)
    registry = RegistryClient(settings)
    store = ModuleStore(settings, registry)
    await store.prepare_base()
    bridge = HttpBridge(settings)
    pool = ChildPool(settings, isolation, bridge.perform_for)
    # As the service runs them: with the SDK proxy (its loopback brought up at every start).
    pool.proxy_clients = bridge.clients
    runner = JsRunner(settings, isolation, store, pool)
    try:
        with tempfile.TemporaryDirectory(prefix="modyard-js-bench-") as directory:
            root = Path(directory)
            _module(runner, root, "bench.warm.core")
            calls_per_second, latencies = await _rates(
                runner, lambda n: _request("bench.warm.core", n)
            )
            _slingr_package(runner, root, "benchslingr")
            slingr_per_second, slingr_latencies = await _rates(
                runner,
                lambda n: {
                    "module": "benchslingr",
                    "version": "1.0.0",
                    "component": "echo",
                    "port": "in",
                    "payload": {"n": n},
                },
            )

            cold = []
            for index in range(COLD_STARTS):
                name = f"bench.cold{index}.core"
                _module(runner, root, name)
                began = time.perf_counter()
                reply = await runner.handle(_request(name, index))
                cold.append(time.perf_counter() - began)
                assert "outputs" in reply, reply

            await asyncio.sleep(2)  # idle: the call's garbage collected
            rss = [rss_bytes(child.pid) or 0 for child in pool.children() if child.pid]
            spawn = statistics.median(pool.start_times[1:]) if len(pool.start_times) > 1 else 0
    finally:
        await pool.close()
        await bridge.aclose()
        await registry.close()
    return {
        "benchmark": "js_runner",
        "isolation": "complete" if isolation.complete else "; ".join(isolation.missing),
        "calls_per_second": round(calls_per_second),
        "added_p50_ms": round(statistics.median(latencies) * 1000, 3),
        "added_p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99)] * 1000, 3),
        "cold_start_p50_ms": round(statistics.median(cold) * 1000, 1),
        "child_start_p50_ms": round(spawn * 1000, 1),
        "idle_child_rss_mib": round(statistics.median(rss) / 1024 / 1024, 1),
        "slingr": {
            "calls_per_second": round(slingr_per_second),
            "added_p50_ms": round(statistics.median(slingr_latencies) * 1000, 3),
            "workers": settings.slingr_workers,
        },
        "slingr_to_appmixer": round(slingr_per_second / calls_per_second, 3),
        "targets": {
            "slingr_to_appmixer": 0.5,
            "calls_per_second": 10_000,
            "added_p50_ms": 0.3,
            "cold_start_p50_ms": 100,
            "idle_child_rss_mib": 50,
        },
    }
