"""schemathesis against every service's OpenAPI document, as real processes, with and without a
token: no 5xx, no status code or body the document does not declare.

The budget is fixed (deterministic generation, examples per operation, phases) so a run is repeatable and the whole
module takes well under two minutes; a failure prints schemathesis' report with a ``curl`` that
reproduces it. Every finding becomes a plain regression test in the owning service's tests.
Run it alone with ``uv run pytest tests/test_api_fuzzing.py -q``.
"""

from __future__ import annotations

import asyncio
import random
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import (
    SERVICE_PACKAGES,
    ServiceProcess,
    auth_headers,
    free_port,
    service_process,
    wait_processes_ready,
)

pytestmark = [pytest.mark.infra, pytest.mark.timeout(120)]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
#: Test cases per operation and phase: a few hundred requests per service and token mode.
MAX_EXAMPLES = 10
CHECKS = ",".join(
    (
        "not_a_server_error",  # no 5xx
        "status_code_conformance",  # only the statuses the document declares
        "response_schema_conformance",  # bodies as documented
        "content_type_conformance",
        "response_headers_conformance",
        "negative_data_rejection",  # what the schema forbids is refused (4xx), not accepted
        "ignored_auth",  # an operation that declares a token refuses a request without one
    )
)

#: Operations fuzzing must not call, and why. Everything else is fuzzed, with and without a token.
EXCLUDED: dict[str, dict[str, str]] = {
    "deployer": {
        # A deploy rolls out a generated deployment: the daemon would pull the generated image
        # reference (any host, not loopback) and start a container. Creating, patching, resuming
        # and suspending stay fuzzed: none of them starts anything for a never-deployed one.
        "deploy_v1_deployments__ref__deploy_post": "pulls and runs a generated image",
    },
    "runtime": {
        # Stored automations run on schedules, events and endpoints and may `fetch` any URL.
        "save_automation_v1_workspaces__ws__automations__slug__put": "automations may fetch URLs",
        "import_source_v1_workspaces__ws__source_put": "imports automations (may fetch URLs)",
        # A started flow's core.http nodes request the URLs written in the generated flow.
        "start_flow_v1_workspaces__ws__flows__flow_id__start_post": "core.http nodes fetch URLs",
    },
}


def unclaimable_port() -> int:
    """A free loopback port outside the kernel's ephemeral range: chosen before the services
    start, it must not be taken meanwhile as the source port of their own database and broker
    connections (which a ``bind(0)`` port, from that very range, can be)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for candidate in random.sample(
        range(10_000, max(low, 10_001)), k=min(200, max(low - 10_000, 1))
    ):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    return free_port()


@pytest.fixture(scope="module")
async def services(
    infra: IsolatedInfra, infra_settings: CommonSettings
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """The five services, each told where the others are (not the defaults on :8001-8005, where
    a developer's `make up` may be listening)."""
    chosen: set[int] = set()
    while len(chosen) < len(SERVICE_PACKAGES):
        chosen.add(unclaimable_port())
    ports = dict(zip(SERVICE_PACKAGES, sorted(chosen), strict=True))
    urls = {
        f"MODYARD_{'GATEWAY' if s == 'appcell-gateway' else s.upper()}_URL": f"http://127.0.0.1:{port}"
        for s, port in ports.items()
    }
    env = {
        **infra.env(),
        **urls,
        # Webhook subscriptions are fuzzed with generated URLs (any host): their deliveries are
        # recorded but never sent.
        "MODYARD_RUNTIME_WEBHOOK_DELIVERY_ENABLED": "false",
        # Whatever the deployer touches in Docker is this session's own.
        "MODYARD_DEPLOYER_NAMESPACE": f"fuzz-{uuid.uuid4().hex[:8]}",
    }
    async with AsyncExitStack() as stack:
        processes = {
            service: await stack.enter_async_context(
                service_process(service, env, ready=False, port=port)
            )
            for service, port in ports.items()
        }
        await wait_processes_ready(processes.values())
        yield processes


@pytest.mark.parametrize("authenticated", [True, False], ids=["operator", "anonymous"])
@pytest.mark.parametrize("service", list(SERVICE_PACKAGES))
async def test_api_answers_generated_requests_as_documented(
    services: dict[str, ServiceProcess],
    infra_settings: CommonSettings,
    service: str,
    authenticated: bool,
    tmp_path: Path,
) -> None:
    process = services[service]
    # A renamed operation would silently be fuzzed again: its exclusion must still name it.
    async with httpx.AsyncClient(base_url=process.url) as client:
        document = (await client.get("/v1/openapi.json")).json()
    operation_ids = {
        operation["operationId"]
        for operations in document["paths"].values()
        for operation in operations.values()
    }
    assert set(EXCLUDED.get(service, {})) <= operation_ids
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{process.url}/v1/openapi.json",
        f"--max-examples={MAX_EXAMPLES}",
        "--phases=examples,coverage,fuzzing",
        f"--checks={CHECKS}",
        "--generation-deterministic",
        # One worker: hypothesis parses lambdas' source with ast, which CPython 3.11 does not
        # survive from two threads at once ("AST constructor recursion depth mismatch").
        "--workers=1",
        "--request-timeout=10",
        "--warnings=off",
        "--no-color",
    ]
    if authenticated:
        command += ["--header", f"Authorization: {auth_headers(infra_settings)['Authorization']}"]
    for operation_id in EXCLUDED.get(service, {}):
        command += ["--exclude-operation-id", operation_id]
    run = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,  # its report directory and caches stay out of the repository
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await run.communicate()
    report = output.decode(errors="replace")
    assert run.returncode == 0, (
        f"schemathesis found problems in {service} (reproduce with the curl lines):\n"
        f"{report[-20_000:]}\n--- {service} log (tail) ---\n{process.logs()[-5_000:]}"
    )
    assert "Tested:" in report, report[-5_000:]
