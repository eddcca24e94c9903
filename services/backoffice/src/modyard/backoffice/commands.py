"""The backoffice's command line beyond serving (``migrate``, ``--help``), as a typer app: imported
only when a process is asked for one of them, never by a serving one (``__main__``)."""

from __future__ import annotations

from collections.abc import Callable

import typer


def command_line(serve: Callable[[], None]) -> typer.Typer:
    cli = typer.Typer(help="modyard backoffice service", add_completion=False)

    @cli.callback(invoke_without_command=True)
    def default(context: typer.Context) -> None:
        if context.invoked_subcommand is None:
            serve()

    cli.command("serve")(serve)

    @cli.command("migrate")
    def migrate() -> None:
        """Nothing to do: the backoffice has no tables (kept so `modyard dev migrate` may call it)."""
        typer.echo("backoffice: no schema")

    return cli
