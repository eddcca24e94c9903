"""Fixtures of the runtime's tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from modyard.testing.runtime import FetchReceiver

# The tests import their shared helpers (runtime_env) as a sibling module.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[FetchReceiver]:
    server = FetchReceiver()
    await server.start()
    yield server
    await server.stop()
