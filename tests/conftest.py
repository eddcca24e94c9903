from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from modyard.common.testing.infra import IsolatedInfra
from modyard.common.testing.services import (
    SERVICE_PACKAGES,
    ServiceProcess,
    free_port,
    service_process,
    url_variable,
    wait_processes_ready,
)


@pytest.fixture(scope="module")
async def cluster(infra: IsolatedInfra) -> AsyncIterator[dict[str, ServiceProcess]]:
    """All five services as real processes on the session's isolated infrastructure, each told
    where the others are (never the default ports, where a developer's `make up` may listen)."""
    ports = {service: free_port() for service in SERVICE_PACKAGES}
    urls = {url_variable(service): f"http://127.0.0.1:{port}" for service, port in ports.items()}
    async with AsyncExitStack() as stack:
        processes = {
            service: await stack.enter_async_context(
                service_process(service, {**infra.env(), **urls}, ready=False, port=ports[service])
            )
            for service in SERVICE_PACKAGES
        }
        await wait_processes_ready(processes.values())
        yield processes
