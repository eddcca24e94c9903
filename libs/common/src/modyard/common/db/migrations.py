"""Alembic, run per service inside the service's own schema.

Each service keeps its revisions in ``modyard/<service>/migrations``; its ``env.py`` is one call to
:func:`run_alembic_env`. Migrations run on the service's own engine (so the schema's
``search_path`` applies) under a transaction-scoped advisory lock, so that several replicas
starting at once migrate one after the other instead of racing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text

from modyard.common.db.database import Database
from modyard.common.db.messaging_tables import metadata as messaging_metadata


def alembic_config(script_location: Path, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["schema"] = schema
    return config


def _upgrade_on(connection: Connection, config: Config, revision: str) -> None:
    schema = config.attributes["schema"]
    # The lock first: two transactions running CREATE SCHEMA IF NOT EXISTS at once are not safe
    # (the second fails on pg_namespace's unique index once the first commits).
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"modyard-migrate-{schema}"},
    )
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(database: Database, script_location: Path, revision: str = "head") -> None:
    """Bring the service's schema to the newest revision, or to ``revision`` (idempotent)."""
    config = alembic_config(script_location, database.schema)
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade_on, config, revision)


async def pending_revisions(database: Database, script_location: Path) -> list[str]:
    """Revisions not yet applied; empty when the schema is current."""
    script = ScriptDirectory.from_config(alembic_config(script_location, database.schema))

    def current_heads(connection: Connection) -> tuple[str, ...]:
        migration_context = MigrationContext.configure(
            connection, opts={"version_table_schema": database.schema}
        )
        return migration_context.get_current_heads()

    async with database.engine.connect() as connection:
        heads = await connection.run_sync(current_heads)
    return [
        revision.revision
        for revision in script.iterate_revisions("heads", heads[0] if heads else "base")
        if revision.revision not in heads
    ]


def run_alembic_env(service_metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    config = context.config
    connection: Connection | None = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "Run migrations with `modyard-<service> migrate` (or let the service migrate on "
            "start-up); plain `alembic upgrade` has no engine to use."
        )
    context.configure(
        connection=connection,
        target_metadata=[messaging_metadata, service_metadata],
        version_table_schema=config.attributes["schema"],
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
