"""The command line of every service: ``modyard-<service> [serve|migrate]``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import typer
import uvicorn
from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec
from modyard.common.db.database import Database
from modyard.common.db.migrations import migrate
from modyard.common.logging import configure_logging


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
        settings = spec.settings
        uvicorn.run(
            app_factory(),
            host=settings.host,
            port=settings.port,
            log_config=None,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=10,
        )

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

    return cli
