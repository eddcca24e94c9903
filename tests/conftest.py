from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from modyard.common.testing.infra import IsolatedInfra
from modyard.common.testing.services import (
    SERVICE_PACKAGES,
    ServiceProcess,
    service_process,
    wait_processes_ready,
)


@pytest.fixture(scope="module")
async def cluster(infra: IsolatedInfra) -> AsyncIterator[dict[str, ServiceProcess]]:
    """All five services as real processes on the session's isolated infrastructure."""
    async with AsyncExitStack() as stack:
        processes = {
            service: await stack.enter_async_context(
                service_process(service, infra.env(), ready=False)
            )
            for service in SERVICE_PACKAGES
        }
        await wait_processes_ready(processes.values())
        yield processes
