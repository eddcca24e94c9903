"""The runner with its database: the persistent context members (state, locks, timers, stores,
files) answer from a PostgreSQL schema of the test session's own database."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jsrunner_env import Harness, runner_settings

from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate
from modyard.jsrunner.context_api import ContextApi
from modyard.jsrunner.http_bridge import HttpBridge
from modyard.jsrunner.isolation import probe
from modyard.jsrunner.modules import ModuleStore
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.registry_client import RegistryClient
from modyard.jsrunner.runner import JsRunner
from modyard.testing.infra import IsolatedInfra

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "modyard" / "jsrunner" / "migrations"


class PersistentHarness(Harness):
    api: ContextApi

    def declare_persistent_state(self, module: str, component: str) -> None:
        """As component.json's ``"state": {"persistent": true}`` (kept in the manifest's extra
        by the Appmixer format) declares it."""
        loaded = self.runner.store._loaded[(module, "1.0.0")]
        name = f"{module}.{component}"
        loaded.components[name] = dataclasses.replace(
            loaded.components[name], persistent_state=True
        )

    async def run(
        self,
        module: str,
        component: str,
        payload: Any = None,
        *,
        workspace: str = "wsa",
        flow_id: str = "flow-1",
        node_id: str = "node-1",
        **extra: Any,
    ) -> dict[str, Any]:
        """A call as the runtime sends it from a flow's node."""
        return await self.call(
            module,
            component,
            payload,
            workspace=workspace,
            flow_id=flow_id,
            node_id=node_id,
            message_id=uuid.uuid4().hex,
            **extra,
        )


@pytest.fixture(scope="module")
async def persistent(
    infra: IsolatedInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[PersistentHarness]:
    # A generous deadline: the lock test queues 100 calls behind one another in one child.
    settings = runner_settings(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        db_schema=f"js_ctx_{uuid.uuid4().hex[:8]}",
        call_timeout_seconds=60,
        state_max_value_bytes=4096,
        state_max_bytes=16384,
        store_max_value_bytes=4096,
        file_max_bytes=1024 * 1024,
    )
    database = Database(settings)
    await migrate(database, MIGRATIONS)
    isolation = await probe(settings)
    registry = RegistryClient(settings)
    store = ModuleStore(settings, registry)
    await store.prepare_base()
    bridge = HttpBridge(settings)
    pool = ChildPool(settings, isolation, bridge.perform_for)
    runner = JsRunner(settings, isolation, store, pool)
    api = ContextApi(settings, database)
    runner.use_context_api(api)
    harness = PersistentHarness(runner, settings, tmp_path_factory.mktemp("modules"))
    harness.api = api
    try:
        yield harness
    finally:
        await pool.close()
        await bridge.aclose()
        await registry.close()
        await database.dispose()
