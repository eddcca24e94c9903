"""pytest fixtures on real infrastructure (started by ``make test`` through ``modyard dev infra up``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from modyard.common.settings import CommonSettings
from modyard.testing.infra import (
    IsolatedInfra,
    isolated_infra,
    missing_infrastructure,
    non_loopback_targets,
)


def pytest_configure(config: pytest.Config) -> None:
    # Tests talk to servers on loopback: allowed explicitly here (never by default), and
    # inherited by every service process the tests start. The platform's own ports stay refused.
    os.environ.setdefault("MODYARD_EGRESS_ALLOW_LOOPBACK", "true")


@pytest.fixture(scope="session")
def infra_settings() -> CommonSettings:
    settings = CommonSettings()
    elsewhere = non_loopback_targets(settings)
    if elsewhere:
        pytest.fail(
            f"Tests only talk to loopback infrastructure, but {', '.join(elsewhere)} point elsewhere. "
            "Unset them (and check .env and .run/infra.env).",
            pytrace=False,
        )
    missing = missing_infrastructure(settings)
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not reachable. Start them with `make infra` "
            "(or run the suite with `make test`, which does).",
            pytrace=False,
        )
    return settings


@pytest.fixture(scope="session")
async def infra(infra_settings: CommonSettings) -> AsyncIterator[IsolatedInfra]:
    """A database and a vhost of this test session's own."""
    async with isolated_infra(infra_settings) as isolated:
        yield isolated
