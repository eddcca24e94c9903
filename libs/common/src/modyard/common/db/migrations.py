"""Alembic, run per service inside the service's own schema.

Each service keeps its revisions in ``modyard/<service>/migrations``; its ``env.py`` is one call to
:func:`run_alembic_env`. Migrations run on the service's own engine (so the schema's
``search_path`` applies) under a transaction-scoped advisory lock, so that several replicas
starting at once migrate one after the other instead of racing.

Alembic itself (and mako, which it imports) is imported only when there is something to do: a
service restarting on a current schema sees that its stored revision is the newest of its
versions directory (:func:`declared_heads`, read from the revision files' literals) and skips
alembic, which would otherwise stay in every process's memory for its lifetime (~10 MiB,
``make bench ONLY=service_footprint``). Any doubt (a revision that is not a plain literal, no
version table yet, another revision stored) goes to alembic as before.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, MetaData, text

from modyard.common.db.database import Database
from modyard.common.db.messaging_tables import metadata as messaging_metadata

if TYPE_CHECKING:
    from alembic.config import Config


def declared_heads(script_location: Path) -> frozenset[str] | None:
    """The head revisions of ``script_location/versions``: every ``revision`` no file names as
    its ``down_revision``. None when a file's two names are not plain literals (alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((script_location / "versions").glob("*.py")):
        names: dict[str, Any] = {}
        for node in ast.parse(path.read_text(), str(path)).body:
            target = node.targets[0] if isinstance(node, ast.Assign) else None
            if isinstance(node, ast.AnnAssign):
                target = node.target
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                try:
                    names[target.id] = ast.literal_eval(value) if value is not None else None
                except ValueError:
                    return None
        revision, down = names.get("revision"), names.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):
            parents.update(str(parent) for parent in down)
        elif down is not None:
            return None
    return frozenset(revisions - parents) if revisions else None


async def _stored_revisions(database: Database) -> frozenset[str] | None:
    """What the schema's version table holds; None when there is no such table yet."""
    table = f'"{database.schema}".alembic_version'
    async with database.engine.connect() as connection:
        exists = await connection.scalar(text("SELECT to_regclass(:table)"), {"table": table})
        if exists is None:
            return None
        rows = await connection.execute(text(f"SELECT version_num FROM {table}"))  # noqa: S608 - the service's own schema name
        return frozenset(str(row[0]) for row in rows)


async def is_current(database: Database, script_location: Path) -> bool:
    """Whether the schema holds exactly the newest revisions, decided without alembic."""
    heads = declared_heads(script_location)
    return heads is not None and await _stored_revisions(database) == heads


def alembic_config(script_location: Path, schema: str) -> Config:
    from alembic.config import Config

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
    from alembic import command

    command.upgrade(config, revision)


async def migrate(database: Database, script_location: Path, revision: str = "head") -> None:
    """Bring the service's schema to the newest revision, or to ``revision`` (idempotent)."""
    if revision == "head" and await is_current(database, script_location):
        return
    config = alembic_config(script_location, database.schema)
    async with database.engine.begin() as connection:
        await connection.run_sync(_upgrade_on, config, revision)


async def pending_revisions(database: Database, script_location: Path) -> list[str]:
    """Revisions not yet applied; empty when the schema is current."""
    if await is_current(database, script_location):
        return []
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

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
    from alembic import context

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
