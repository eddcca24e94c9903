"""Fixtures of the runtime's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modyard.runtime.testing import FetchReceiver


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[FetchReceiver]:
    server = FetchReceiver()
    await server.start()
    yield server
    await server.stop()
