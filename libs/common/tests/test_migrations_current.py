"""A service restarting on a current schema decides so without alembic (modyard.common.db.migrations
``is_current``), and anything else still goes through alembic: a fresh schema, a new revision, a
revision file whose names are not plain literals."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from modyard.common.db.database import Database
from modyard.common.db.migrations import declared_heads, is_current, migrate
from modyard.common.settings import ServiceSettings
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn

SERVICES = Path(__file__).resolve().parents[3] / "services"
ENV = "from sqlalchemy import MetaData\nfrom modyard.common.db.migrations import run_alembic_env\nrun_alembic_env(MetaData())\n"
REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down}


def upgrade() -> None:
    op.create_table("things_{revision}", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("things_{revision}")
"""


def _scripts(tmp_path: Path) -> Path:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(ENV)
    (tmp_path / "versions" / "0001_things.py").write_text(
        REVISION.format(revision="0001", down="None")
    )
    return tmp_path


@pytest.mark.parametrize(
    "migrations", sorted(SERVICES.glob("*/src/modyard/*/migrations")), ids=lambda p: p.parts[-4]
)
def test_the_heads_read_from_the_files_are_alembics(migrations: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    assert declared_heads(migrations) == frozenset(ScriptDirectory.from_config(config).get_heads())


def test_a_revision_that_is_not_a_literal_leaves_the_decision_to_alembic(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path)
    (scripts / "versions" / "0002_odd.py").write_text(
        REVISION.format(revision="0002", down="'000' + '1'")
    )
    assert declared_heads(scripts) is None


def _database(infra: IsolatedInfra, schema: str) -> Database:
    class Settings(ServiceSettings):
        service_name = "migration-current"

    return Database(
        Settings(database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema=schema)
    )


@pytest.mark.infra
async def test_current_only_after_every_revision_is_applied(
    infra: IsolatedInfra, tmp_path: Path
) -> None:
    scripts = _scripts(tmp_path)
    schema = f"current_{uuid.uuid4().hex[:8]}"
    database = _database(infra, schema)
    holder = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    try:
        assert not await is_current(database, scripts)  # no schema, no version table
        await migrate(database, scripts)
        assert await is_current(database, scripts)
        (scripts / "versions" / "0002_more.py").write_text(
            REVISION.format(revision="0002", down='"0001"')
        )
        assert not await is_current(database, scripts)
        await migrate(database, scripts)  # the new revision is applied, by alembic
        assert await is_current(database, scripts)
        tables = await holder.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema
        )
        assert [row["tablename"] for row in tables] == [
            "alembic_version",
            "things_0001",
            "things_0002",
        ]
    finally:
        await holder.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await holder.close()
        await database.dispose()


@pytest.mark.infra
async def test_a_restart_on_a_current_schema_never_imports_alembic(
    infra: IsolatedInfra, tmp_path: Path
) -> None:
    scripts = _scripts(tmp_path)
    schema = f"current_{uuid.uuid4().hex[:8]}"
    database = _database(infra, schema)
    holder = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    restart = f"""
import asyncio, sys
from pathlib import Path
from modyard.common.db.migrations import migrate, pending_revisions
from modyard.common.db.database import Database
from modyard.common.settings import ServiceSettings

class Settings(ServiceSettings):
    service_name = "migration-current"

async def main():
    database = Database(Settings(database_url={infra.database_url!r}, amqp_url={infra.amqp_url!r}, db_schema={schema!r}))
    await migrate(database, Path({str(scripts)!r}))
    print(await pending_revisions(database, Path({str(scripts)!r})))
    await database.dispose()
    print(sorted(name for name in sys.modules if name.split(".")[0] in ("alembic", "mako")))

asyncio.run(main())
"""
    try:
        await migrate(database, scripts)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", restart, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0
        assert stdout.decode().split("\n")[:2] == ["[]", "[]"]
    finally:
        await holder.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await holder.close()
        await database.dispose()
