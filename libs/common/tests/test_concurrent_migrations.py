"""Replicas (or two pods of a migration Job) migrating one fresh schema at the same time.

They must take turns from the very first statement: ``CREATE SCHEMA IF NOT EXISTS`` run by two
transactions at once is not safe in PostgreSQL (the second fails with a unique violation on
``pg_namespace`` once the first commits), which is how two pods of a Kubernetes Job started
together failed (tests/test_images_compose.py). Deterministic: the test holds the migration lock
itself, both migrations must then be seen waiting for it, and both succeed once it is released.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate
from modyard.common.settings import ServiceSettings
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.testing.polling import eventually

pytestmark = pytest.mark.infra

ENV = """
from sqlalchemy import MetaData

from modyard.common.db.migrations import run_alembic_env

run_alembic_env(MetaData())
"""

FIRST_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("things", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("things")
"""


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "0001_things.py").write_text(FIRST_REVISION)
    return tmp_path


def database_for(infra: IsolatedInfra, schema: str) -> Database:
    class Settings(ServiceSettings):
        service_name = "migration-race"

    return Database(
        Settings(database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema=schema)
    )


async def test_two_migrations_of_a_fresh_schema_wait_for_each_other_then_both_succeed(
    infra: IsolatedInfra, scripts: Path
) -> None:
    schema = f"race_{uuid.uuid4().hex[:8]}"
    databases = [database_for(infra, schema), database_for(infra, schema)]
    holder = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    try:
        # The lock the migrations take (transaction-scoped there, session-scoped here: one space).
        await holder.execute("SELECT pg_advisory_lock(hashtext($1))", f"modyard-migrate-{schema}")
        runs = [asyncio.create_task(migrate(database, scripts)) for database in databases]

        async def both_wait_for_the_lock() -> bool:
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(waiting == 2)

        await eventually(both_wait_for_the_lock, timeout=30)
        # Nothing of the schema exists while they wait, not even uncommitted.
        assert (
            await holder.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
            == 0
        )
        await holder.execute("SELECT pg_advisory_unlock_all()")
        await asyncio.wait_for(asyncio.gather(*runs), timeout=60)

        # The schema's name is the test's own (race_<hex>).
        query = f'SELECT version_num FROM "{schema}".alembic_version'  # noqa: S608
        versions = await holder.fetch(query)
        assert [row["version_num"] for row in versions] == ["0001"]
    finally:
        await holder.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await holder.close()
        for database in databases:
            await database.dispose()
