"""The commands of every service beyond serving: ``modyard-<service> [serve|migrate|rotate-secrets]``
and ``--help``, as a typer app. Imported only when a process is asked for one of them
(:func:`modyard.common.service_cli.main`): a serving process never loads typer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import typer
from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec
from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate
from modyard.common.db.secret_rotation import RotationReport, rotate_secrets
from modyard.common.logging import configure_logging
from modyard.common.service_cli import run_server
from modyard.common.settings import SecretKeysSettings


def service_cli(
    spec_factory: Callable[[], ServiceSpec], app_factory: Callable[[], FastAPI]
) -> typer.Typer:
    spec = spec_factory()
    name = spec.settings.service_name
    cli = typer.Typer(help=f"modyard {name} service", no_args_is_help=False, add_completion=False)

    @cli.callback(invoke_without_command=True)
    def default(context: typer.Context) -> None:
        if context.invoked_subcommand is None:
            serve()

    @cli.command()
    def serve() -> None:
        """Run the HTTP service (migrates on start-up unless MODYARD_<SERVICE>_MIGRATE_ON_STARTUP=false)."""
        run_server(app_factory(), spec.settings)

    @cli.command("migrate")
    def migrate_command() -> None:
        """Bring this service's database schema up to date, then exit."""
        settings = spec.settings
        configure_logging(service=name, level=settings.log_level, json=settings.log_json)

        async def run() -> None:
            database = Database(settings)
            try:
                await migrate(database, spec.migrations)
            finally:
                await database.dispose()

        asyncio.run(run())
        typer.echo(f"{name}: schema '{settings.db_schema}' is up to date")

    @cli.command("rotate-secrets")
    def rotate_secrets_command() -> None:
        """Re-encrypt every stored secret under the first of this service's keys, so that the
        keys after it can then be removed from MODYARD_<SERVICE>_SECRET_KEYS."""
        settings = spec.settings
        if not spec.encrypted_columns or not isinstance(settings, SecretKeysSettings):
            typer.echo(f"{name} stores no encrypted secrets")
            return
        configure_logging(service=name, level=settings.log_level, json=settings.log_json)
        box = settings.secret_box()

        async def run() -> list[RotationReport]:
            database = Database(settings)
            try:
                return await rotate_secrets(database, box, spec.encrypted_columns)
            finally:
                await database.dispose()

        reports = asyncio.run(run())
        for report in reports:
            typer.echo(
                f"{report.column}: {report.rotated} rotated, {report.current} already current, "
                f"{report.unreadable} unreadable"
            )
        if any(report.unreadable for report in reports):
            typer.echo(
                f"some secrets open under none of the keys in {settings.secret_keys_setting}: "
                "put their key back (after the first) and run this again",
                err=True,
            )
            raise typer.Exit(1)

    return cli
