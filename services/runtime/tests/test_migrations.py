"""Data migrations of the runtime's schema, run against the real PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate
from modyard.common.secrets import SecretBox
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "modyard" / "runtime" / "migrations"
PLAINTEXT = "whsec-stored-before-encryption-0123"


async def test_plaintext_webhook_secrets_are_encrypted_under_the_runtime_keys(
    infra: IsolatedInfra, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SecretBox.generate_key()
    monkeypatch.setenv("MODYARD_RUNTIME_SECRET_KEYS", key)
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="secrets_migration"
    )
    database = Database(settings)
    try:
        await migrate(database, MIGRATIONS, revision="0002")
        webhook_id = uuid.uuid4()
        async with database.transaction() as session:
            await session.execute(
                text(
                    "INSERT INTO system_webhooks (id, url, events, secret, created_by) "
                    "VALUES (:id, 'http://127.0.0.1:9/hook', '{*}', :secret, 'ops')"
                ),
                {"id": webhook_id, "secret": PLAINTEXT},
            )

        async def stored() -> str:
            async with database.transaction() as session:
                query = text("SELECT secret FROM system_webhooks WHERE id = :id")
                secret: str = (await session.execute(query, {"id": webhook_id})).scalar_one()
                return secret

        await migrate(database, MIGRATIONS)
        encrypted = await stored()
        assert encrypted != PLAINTEXT
        assert SecretBox([key]).decrypt(encrypted).decode() == PLAINTEXT
        await migrate(database, MIGRATIONS)  # at head: nothing runs, nothing changes
        assert await stored() == encrypted
    finally:
        await database.dispose()
