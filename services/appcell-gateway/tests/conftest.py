"""Fixtures of the gateway's tests (helpers in gateway_env.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# The example cell lives in examples/ at the repository's root.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import uuid
from collections.abc import AsyncIterator

import pytest
from gateway_env import TIMEOUT, WS, Env
from sqlalchemy import select

from examples.resellerclub_cell.cell import cell as example_cell
from examples.resellerclub_cell.module_archive import module_zip
from modyard.appcell_gateway.app import create_app
from modyard.appcell_gateway.models import Cell
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import in_process, service_process


# Module scope, not package or session: the registry and installer processes consume the shared
# ``registry.events`` / ``installer.events`` queues of the session's vhost, so they must be gone
# before other packages' tests start their own.
@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    suffix = uuid.uuid4().hex[:6]
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": f"registry_for_gateway_{suffix}"}
    async with service_process("registry", registry_env) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": f"installer_for_gateway_{suffix}",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            settings = GatewaySettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                registry_url=registry.url,
                installer_url=installer.url,
                db_schema=f"gateway_{suffix}",
                request_timeout_seconds=TIMEOUT,
                catalogue_refresh_seconds=0.2,
                settings_cache_seconds=0.2,
            )
            app = create_app(settings)
            async with in_process(app) as client:
                environment = Env(client, app, registry.url, installer.url, settings, infra)
                created = await environment.external(
                    "POST", f"{installer.url}/v1/workspaces", json={"slug": WS, "name": "Cells"}
                )
                assert created.status_code == 201, created.text
                await environment.publish(module_zip())
                await environment.install("rc")
                await environment.wait_status(f"{WS}:rc", "ready")
                await environment.run_cell(f"{WS}:rc", example_cell)
                try:
                    yield environment
                finally:
                    for key in list(environment.workers):
                        await environment.stop_cell(key)
                    # Broker users are not per vhost: remove the ones this session created.
                    async with environment.gateway.database.transaction() as session:
                        owned = list(
                            await session.scalars(
                                select(Cell.installation_id).where(Cell.amqp_username.is_not(None))
                            )
                        )
                    for installation_id in owned:
                        await environment.gateway.broker.remove_cell(installation_id)
