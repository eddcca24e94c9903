"""Operators' ``APP_CONFIG_…``/``APP_SECRET_…`` variables across workspaces (live: a registry
process and the installer in process, real PostgreSQL).

The variables name the installed module. They once named the installation's slug, which every
workspace picks freely: a tenant could name an installation of any module like another workspace's
and be handed the secret meant for it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_api import Env, native_module

from modyard.common.auth import Role
from modyard.installer.app import create_app
from modyard.installer.context import SLOT
from modyard.installer.settings import InstallerSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process, service_process

pytestmark = pytest.mark.infra

B_SECRET = "b-vendor-api-key-0xB0B"
MODULE_KEY = "operator-key-for-every-conf-mod"

#: A module whose secret can be sent wherever its (tenant-set) base URL says.
FORWARDING = {
    "schema": {
        "type": "object",
        "properties": {
            "apiKey": {"type": "string", "writeOnly": True},
            "baseUrl": {"type": "string"},
        },
    },
    "fields": [
        {"name": "apiKey", "type": "password", "secret": True},
        {"name": "baseUrl", "type": "text"},
    ],
}
CONFIGURABLE_WITH_KEY = {
    "schema": {
        "type": "object",
        "required": ["apiKey"],
        "properties": {"apiKey": {"type": "string", "writeOnly": True}},
    },
    "fields": [{"name": "apiKey", "type": "password", "secret": True, "required": True}],
}


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_env_overrides"}
    async with service_process("registry", registry_env) as registry:
        settings = InstallerSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            registry_url=registry.url,
            db_schema="installer_env_overrides",
        )
        app = create_app(settings)
        async with in_process(app) as client:
            environment = Env(registry, client, app, settings)
            await environment.publish(
                native_module("keyed-mod", "1.0.0", config=CONFIGURABLE_WITH_KEY)
            )
            await environment.publish(native_module("forward-mod", "1.0.0", config=FORWARDING))
            yield environment


async def _effective(env: Env, ws: str, slug: str) -> dict[str, Any]:
    response = await env.call(
        "GET", f"/v1/workspaces/{ws}/installations/{slug}/effective-config", headers=env.service
    )
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()["config"]
    return config


async def test_a_variable_reaches_the_module_it_names_never_another_workspaces_slug(
    env: Env,
) -> None:
    await env.workspace("tenant-a")
    await env.workspace("tenant-b")
    alice = auth_headers(env.settings, Role.user, workspaces=("tenant-a",), subject="a@a.example")
    bob = auth_headers(env.settings, Role.user, workspaces=("tenant-b",), subject="b@b.example")

    # The operator means B's installation 'crm' (the slug form), and every keyed-mod (the module).
    SLOT.of(env.app).environ = {
        "APP_SECRET_CRM_APIKEY": B_SECRET,
        "APP_SECRET_KEYED_MOD_APIKEY": MODULE_KEY,
    }
    try:
        b = await env.call(
            "POST",
            "/v1/workspaces/tenant-b/installations",
            json={"module": "keyed-mod", "slug": "crm"},
            headers=bob,
        )
        # A names an installation of another module like B's, pointing its URL at itself.
        a = await env.call(
            "POST",
            "/v1/workspaces/tenant-a/installations",
            json={
                "module": "forward-mod",
                "slug": "crm",
                "config": {"baseUrl": "https://attacker.example"},
            },
            headers=alice,
        )
        assert (b.status_code, a.status_code) == (201, 201), b.text + a.text
        a_config = await _effective(env, "tenant-a", "crm")
        b_config = await _effective(env, "tenant-b", "crm")
    finally:
        SLOT.of(env.app).environ = {}

    assert a_config == {"baseUrl": "https://attacker.example"}
    # B's installation has its module's variable; the slug-named one reaches nobody.
    assert b_config == {"apiKey": MODULE_KEY}
