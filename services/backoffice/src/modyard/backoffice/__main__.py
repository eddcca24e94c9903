"""``modyard-backoffice [serve]``: the console keeps no data, so it has nothing to migrate."""

from __future__ import annotations

from modyard.common.lean_process import lean_service_process

# Before any other import: what a service process leaves out (see lean_process).
lean_service_process()

import typer  # noqa: E402

from modyard.backoffice.app import create_app  # noqa: E402
from modyard.backoffice.settings import BackofficeSettings  # noqa: E402
from modyard.common.service_cli import run_server  # noqa: E402

cli = typer.Typer(help="modyard backoffice service", add_completion=False)


@cli.callback(invoke_without_command=True)
def default(context: typer.Context) -> None:
    if context.invoked_subcommand is None:
        serve()


@cli.command()
def serve() -> None:
    """Run the web console."""
    run_server(create_app(), BackofficeSettings())


@cli.command("migrate")
def migrate() -> None:
    """Nothing to do: the backoffice has no tables (kept so `modyard dev migrate` may call it)."""
    typer.echo("backoffice: no schema")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
