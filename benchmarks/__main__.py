"""Run the benchmarks against the local infrastructure, on an isolated database and vhost.

``python -m benchmarks`` runs them all; ``python -m benchmarks runtime gateway`` (or
``make bench ONLY="runtime gateway"``) runs those of the named modules only.
"""

from __future__ import annotations

import asyncio
import json
import sys

from benchmarks import (
    accounts,
    automations,
    deployer,
    egress,
    event_bus,
    gateway,
    installer,
    installer_resolution,
    js_flow,
    js_runner,
    registry,
    resilience,
    runtime,
    service_footprint,
    tracing,
)
from modyard.common.logging import configure_logging
from modyard.common.settings import CommonSettings
from modyard.testing.infra import (
    isolated_infra,
    missing_infrastructure,
    non_loopback_targets,
)

BENCHMARKS = (
    event_bus.outbox_throughput,
    event_bus.event_latency,
    service_footprint.idle_service,
    registry.registry_load,
    installer_resolution.resolution_speed,
    installer.installs_per_second,
    runtime.runtime_load,
    deployer.deployer_load,
    gateway.gateway_load,
    automations.automations_load,
    resilience.resilience,
    egress.egress_overhead,
    js_runner.js_runner_load,
    js_flow.js_flow_load,
    tracing.tracing_hot_path,
    tracing.tracing_overhead,
    accounts.accounts_load,
)


async def main(only: list[str]) -> int:
    configure_logging(service="bench", level="WARNING", json=True, stream=sys.stderr)
    known = {benchmark.__module__.rpartition(".")[2] for benchmark in BENCHMARKS}
    if unknown := sorted(set(only) - known):
        print(
            f"no benchmark {', '.join(unknown)}; choose from {', '.join(sorted(known))}",
            file=sys.stderr,
        )
        return 2
    settings = CommonSettings()
    problems = non_loopback_targets(settings) + missing_infrastructure(settings)
    if problems:
        print(f"cannot benchmark: {', '.join(problems)}; run `make infra`", file=sys.stderr)
        return 2
    async with isolated_infra(settings) as infra:
        for benchmark in BENCHMARKS:
            if only and benchmark.__module__.rpartition(".")[2] not in only:
                continue
            result = await benchmark(infra)
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1:])))
