from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modyard.testing.cluster import running_cluster
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import PROCESS_PACKAGES, ServiceProcess


@pytest.fixture(scope="module")
async def cluster(infra: IsolatedInfra) -> AsyncIterator[dict[str, ServiceProcess]]:
    """All six services (the backoffice too) as real processes on the session's isolated
    infrastructure, each told where the others are (never the default ports, where a developer's
    `make up` may listen)."""
    async with running_cluster(infra.env(), services=PROCESS_PACKAGES) as started:
        yield started.processes
