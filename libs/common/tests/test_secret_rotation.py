"""``rotate-secrets``: stored tokens re-encrypted under the first key, on the real PostgreSQL; and
the command itself, run as an operator would, against a migrated service schema."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from modyard.common.db.database import Database
from modyard.common.db.secret_rotation import EncryptedColumn, rotate_secrets
from modyard.common.secrets import SecretBox
from modyard.common.settings import ServiceSettings
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra

COLUMN = EncryptedColumn("vault", "token")


@pytest.fixture
async def database(infra: IsolatedInfra) -> AsyncIterator[Database]:
    settings = ServiceSettings(database_url=infra.database_url, db_schema="rotation_test")
    database = Database(settings)
    async with database.engine.begin() as connection:
        await connection.execute(text('CREATE SCHEMA IF NOT EXISTS "rotation_test"'))
        await connection.execute(text("DROP TABLE IF EXISTS rotation_test.vault"))
        await connection.execute(
            text("CREATE TABLE rotation_test.vault (id serial PRIMARY KEY, token text)")
        )
    yield database
    await database.dispose()


async def test_tokens_are_rotated_to_the_first_key_and_unreadable_ones_reported(
    database: Database,
) -> None:
    old, new, lost = (SecretBox.generate_key() for _ in range(3))
    under_old = SecretBox([old]).encrypt_json({"password": "p1"})
    under_new = SecretBox([new]).encrypt_json({"password": "p2"})
    under_lost = SecretBox([lost]).encrypt_json({"password": "p3"})
    async with database.transaction() as session:
        for token in (under_old, under_new, under_lost, None):
            await session.execute(text("INSERT INTO vault (token) VALUES (:t)"), {"t": token})

    (report,) = await rotate_secrets(database, SecretBox([new, old]), [COLUMN])

    assert (report.rotated, report.current, report.unreadable) == (1, 1, 1)
    async with database.transaction() as session:
        tokens = (await session.scalars(text("SELECT token FROM vault ORDER BY id"))).all()
    only_new = SecretBox([new])
    # The old key can now go: what it encrypted opens under the new key alone.
    assert only_new.decrypt_json(tokens[0]) == {"password": "p1"}
    assert tokens[1] == under_new
    assert tokens[2] == under_lost  # left as it was: nothing opens it
    assert tokens[3] is None
    (again,) = await rotate_secrets(database, SecretBox([new, old]), [COLUMN])
    assert (again.rotated, again.current, again.unreadable) == (0, 2, 1)


async def test_the_service_command_rotates_a_migrated_schema(infra: IsolatedInfra) -> None:
    env = {
        **os.environ,
        **infra.env(),
        "MODYARD_DEPLOYER_DB_SCHEMA": "rotation_cli",
        "MODYARD_DEPLOYER_SECRET_KEYS": f"{SecretBox.generate_key()},{SecretBox.generate_key()}",
    }

    async def run(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "modyard.deployer", *args,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
        return process.returncode or 0, output.decode()

    assert (await run("migrate"))[0] == 0
    code, output = await run("rotate-secrets")
    assert code == 0, output
    assert "deployments.token_encrypted: 0 rotated, 0 already current, 0 unreadable" in output
    assert "deployments.env_encrypted:" in output
