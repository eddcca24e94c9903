"""Fixtures of the JavaScript runner's tests (helpers in jsrunner_env.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
from jsrunner_env import Harness, runner_settings
from persistence_env import persistent  # noqa: F401 - the runner with its database

from modyard.jsrunner.http_bridge import HttpBridge
from modyard.jsrunner.isolation import probe
from modyard.jsrunner.modules import ModuleStore
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.registry_client import RegistryClient
from modyard.jsrunner.runner import JsRunner


@pytest.fixture(scope="session")
async def harness(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    settings = runner_settings()
    isolation = await probe(settings)
    assert isolation.complete, isolation.missing  # this machine has every layer
    registry = RegistryClient(settings)
    store = ModuleStore(settings, registry)
    await store.prepare_base()
    bridge = HttpBridge(settings)
    pool = ChildPool(settings, isolation, bridge.perform_for)
    pool.proxy_clients = bridge.clients
    runner = JsRunner(settings, isolation, store, pool)
    try:
        yield Harness(runner, settings, tmp_path_factory.mktemp("modules"))
    finally:
        await pool.close()
        await bridge.aclose()
        await registry.close()
