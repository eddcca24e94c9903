"""Issue 17, hole 11: a workspace's sealed config values are unsealed only for fields its schema
declares secret, and ``rotate-secrets`` re-encrypts them (real PostgreSQL and RabbitMQ, two
workspaces)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from modyard.common.auth import Role
from modyard.common.db.secret_rotation import rotate_secrets
from modyard.common.secrets import SecretBox
from modyard.runtime.app import create_app, service_spec
from modyard.runtime.automations.models import AutomationWorkspace
from modyard.runtime.automations.secret_config import SEALED, SealedConfigColumn, unsealed_config
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.context import SLOT
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

VICTIM, ATTACKER = "sealed-victim", "sealed-attacker"
OLD_KEY = SecretBox.generate_key()


class Env:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RuntimeSettings) -> None:
        self.client, self.app, self.settings = client, app, settings

    def user(self, workspace: str) -> dict[str, str]:
        return auth_headers(self.settings, Role.user, workspaces=(workspace,))

    @property
    def service(self) -> AutomationService:
        service = SLOT.of(self.app).automations
        assert isinstance(service, AutomationService)
        return service

    async def configure(
        self, workspace: str, schema: dict[str, Any], value: dict[str, Any]
    ) -> None:
        response = await self.client.put(
            f"/v1/workspaces/{workspace}/app-settings",
            json={"config": {"schema": schema, "value": value}},
            headers=self.user(workspace),
        )
        assert response.status_code == 200, response.text
        self.service.programs.forget(workspace)

    async def stored(self, workspace: str) -> tuple[dict[str, Any], dict[str, Any]]:
        async with self.app.state.database.transaction() as session:
            row = await session.get(AutomationWorkspace, workspace)
            assert row is not None
            return dict(row.config_schema), dict(row.config_value)

    async def config(self, workspace: str) -> dict[str, Any]:
        self.service.programs.forget(workspace)
        return dict((await self.service.programs.get(workspace)).config)


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    settings = RuntimeSettings(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        db_schema="runtime_sealed",
        secret_keys=OLD_KEY,
    )
    app = create_app(settings)
    async with in_process(app) as client:
        yield Env(client, app, settings)


SECRET_SCHEMA = {"KEY": {"type": "string", "secret": True}, "URL": {"type": "string"}}


async def test_a_sealed_value_in_a_field_not_declared_secret_is_not_unsealed(env: Env) -> None:
    await env.configure(VICTIM, SECRET_SCHEMA, {"KEY": "victim-secret", "URL": "https://v.test"})
    _, victim_stored = await env.stored(VICTIM)
    leaked = victim_stored["KEY"]  # a sealed value got out (a backup, an export, a log)
    assert set(leaked) == {SEALED}

    # The other workspace pastes it into a plain field: it stays the opaque value it is.
    await env.configure(ATTACKER, {"PLAIN": {"type": "object"}}, {"PLAIN": leaked})
    assert (await env.config(ATTACKER))["PLAIN"] == leaked
    save = await env.client.put(
        f"/v1/workspaces/{ATTACKER}/automations/peek",
        json={"output": "{{config.PLAIN}}", "do": []},
        headers=env.user(ATTACKER),
    )
    assert save.status_code in (200, 201), save.text
    env.service.programs.forget(ATTACKER)
    ran = await env.client.post(
        f"/v1/workspaces/{ATTACKER}/automations/peek/run",
        json={"payload": {}},
        headers=env.user(ATTACKER),
    )
    assert ran.status_code == 200, ran.text
    assert "victim-secret" not in ran.text
    assert ran.json()["output"] == leaked

    # Nor does declaring the field secret afterwards and sending the mask keep the pasted value.
    await env.configure(
        ATTACKER, {"PLAIN": {"type": "string", "secret": True}}, {"PLAIN": "********"}
    )
    assert (await env.config(ATTACKER))["PLAIN"] != "victim-secret"

    # Nothing of the victim's changed.
    assert (await env.stored(VICTIM))[1] == victim_stored
    assert (await env.config(VICTIM))["KEY"] == "victim-secret"


async def test_rotate_secrets_reencrypts_the_sealed_config_of_every_workspace(env: Env) -> None:
    await env.configure(VICTIM, SECRET_SCHEMA, {"KEY": "victim-secret", "URL": "https://v.test"})
    await env.configure(
        ATTACKER,
        {"TOKEN": {"type": "string", "secret": True}, "PLAIN": {"type": "object"}},
        {"TOKEN": "attacker-token", "PLAIN": {SEALED: "not-a-secret-of-ours"}},
    )
    new_key = SecretBox.generate_key()

    # What `modyard-runtime rotate-secrets` runs: every column the runtime declares.
    columns = service_spec(env.settings).encrypted_columns
    assert any(isinstance(column, SealedConfigColumn) for column in columns)
    reports = await rotate_secrets(env.app.state.database, SecretBox([new_key, OLD_KEY]), columns)
    sealed_report = next(r for r in reports if isinstance(r.column, SealedConfigColumn))
    assert sealed_report.unreadable == 0
    assert sealed_report.rotated >= 2

    only_new = SecretBox([new_key])
    for workspace, name, plaintext in (
        (VICTIM, "KEY", "victim-secret"),
        (ATTACKER, "TOKEN", "attacker-token"),
    ):
        schema, value = await env.stored(workspace)
        assert only_new.decrypt_json(value[name][SEALED]) == plaintext
        assert not only_new.needs_rotation(value[name][SEALED])
        assert unsealed_config(schema, value, only_new)[name] == plaintext
    # Plain fields are left exactly as written, sealed-looking or not.
    _, attacker_value = await env.stored(ATTACKER)
    assert attacker_value["PLAIN"] == {SEALED: "not-a-secret-of-ours"}
    assert (await env.stored(VICTIM))[1]["URL"] == "https://v.test"

    again = await rotate_secrets(
        env.app.state.database,
        SecretBox([new_key, OLD_KEY]),
        [SealedConfigColumn("automation_workspaces", "config_value")],
    )
    assert (again[0].rotated, again[0].unreadable) == (0, 0)
