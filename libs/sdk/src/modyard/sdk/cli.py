"""The ``modyard`` command line: one command per operator task, ``--json`` for scripts.

Start-up time matters (every command is a new process): the command groups live in their own
modules and are imported only when one of their commands runs, so ``modyard --help`` loads
neither the HTTP client nor the module formats. :data:`COMMANDS` lists them with the one-line
help that ``modyard --help`` shows (a test checks it against each command's own).
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated

import typer

# Typer vendors its own click (typer._click); its commands and contexts are that click's types.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

from modyard.sdk.cli_support import JsonOption, console, err_console

if TYPE_CHECKING:
    from modyard.sdk.status import Check


@dataclass(frozen=True)
class Lazy:
    """A command (a function) or a group of commands (a ``typer.Typer``) in another module."""

    module: str
    attribute: str
    help: str
    #: The distribution that holds ``module`` when the SDK does not (``modyard dev``: modyard-dev,
    #: development tooling that production installs leave out).
    distribution: str | None = None


#: Every command, in the order ``modyard --help`` lists them; ``None`` ones are defined here.
COMMANDS: dict[str, Lazy | None] = {
    "pack": Lazy(
        "modyard.sdk.modules_cli",
        "pack",
        "Zip a module folder after validating it as the registry would; --json also prints the "
        "canonical manifest the registry will store.",
    ),
    "publish": Lazy(
        "modyard.sdk.modules_cli",
        "publish",
        "Publish a module version to the registry (idempotent for the same archive).",
    ),
    "install": Lazy(
        "modyard.sdk.installer_cli",
        "install",
        "Install a module and its dependencies in a workspace.",
    ),
    "status": None,
    "ping": None,
    "secret-key": None,
    "dev": Lazy(
        "modyard.dev.cli",
        "app",
        "Local development: infrastructure, migrations, running the services.",
        distribution="modyard-dev",
    ),
    "modules": Lazy(
        "modyard.sdk.modules_cli",
        "modules_app",
        "Search, inspect, download and yank published modules.",
    ),
    "workspaces": Lazy(
        "modyard.sdk.workspaces_cli",
        "workspaces_app",
        "Workspaces (tenants) and their members: list, create, show, components, delete.",
    ),
    "installations": Lazy(
        "modyard.sdk.installer_cli",
        "installations_app",
        "Installed modules (app instances) of a workspace.",
    ),
    "acl": Lazy("modyard.sdk.installer_cli", "acl_app", "Who may use which components and routes."),
    "flows": Lazy(
        "modyard.sdk.runtime_cli", "flows_app", "Flows of a workspace: create, start, stop."
    ),
    "dlq": Lazy(
        "modyard.sdk.runtime_cli",
        "dlq_app",
        "Unprocessed messages (the dead-letter queue): inspect, retry, delete.",
    ),
    "webhooks": Lazy(
        "modyard.sdk.runtime_cli",
        "webhooks_app",
        "System webhooks: URLs the runtime tells about system events.",
    ),
    "workers": Lazy(
        "modyard.sdk.runtime_cli",
        "workers_app",
        "Module workers: the broker credentials of an installation's worker.",
    ),
    "cells": Lazy(
        "modyard.sdk.gateway_cli",
        "cells_app",
        "Installed AppCell cells: catalogue, credentials, calling actions, the request log.",
    ),
    "cell": Lazy(
        "modyard.sdk.gateway_cli",
        "cell_app",
        "Run a cell (or a module worker) built with the cell SDK.",
    ),
    "deploy": Lazy(
        "modyard.sdk.deployer_cli",
        "deploy_app",
        "Container modules deployed from a private registry: create, deploy, suspend, resume, "
        "update, delete, list, logs.",
    ),
    "apps": Lazy(
        "modyard.sdk.apps_cli",
        "apps_app",
        "Apps: publish a workspace as an app, list apps and a workspace's instances.",
    ),
    "automations": Lazy(
        "modyard.sdk.apps_cli", "automations_app", "Automations of a workspace: save, list, run."
    ),
    "js": Lazy(
        "modyard.sdk.js_cli",
        "js_app",
        "JavaScript (Appmixer) components: run one once, read their logs.",
    ),
    "accounts": Lazy(
        "modyard.sdk.accounts_cli",
        "accounts_app",
        "Accounts (third-party credentials) of a workspace: list, add, test, delete.",
    ),
    "token": Lazy(
        "modyard.sdk.token_cli",
        "token_app",
        "Tokens: mint a development token (no sub-command), or revoke one.",
    ),
}


def missing_command(name: str, lazy: Lazy) -> click.Command:
    """A stand-in for a command whose distribution is not installed: says what to install."""
    single = typer.Typer(add_completion=False)

    @single.command(
        name,
        help=lazy.help,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )
    def not_installed() -> None:
        err_console.print(
            f"`modyard {name}` needs the {lazy.distribution} package, which is not installed: "
            f"`uv sync` in a modyard checkout installs it (or `pip install {lazy.distribution}`)."
        )
        raise typer.Exit(1)

    command = typer.main.get_command(single)
    command.name = name
    return command


def load_command(name: str, lazy: Lazy) -> click.Command:
    """The click command of ``lazy``, importing its module now."""
    if lazy.distribution is not None and not _importable(lazy.module):
        return missing_command(name, lazy)
    target = getattr(importlib.import_module(lazy.module), lazy.attribute)
    if isinstance(target, typer.Typer):
        # Always a group: get_command would collapse a one-command app (`modyard cell run`) into
        # that command, as add_typer never did.
        command: click.Command = typer.main.get_group(target)
        command.help = lazy.help
        # A sub-app built on its own would offer shell completion; the root one does not.
        command.params = [
            param
            for param in command.params
            if param.name not in ("install_completion", "show_completion")
        ]
    else:
        single = typer.Typer(add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


class LazyGroup(TyperGroup):
    """Imports a command's module when the command runs; lists them all from :data:`COMMANDS`."""

    _listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        lazy = COMMANDS.get(cmd_name)
        if lazy is not None and cmd_name not in self.commands:
            if self._listing:  # the help only needs the one-line description
                return TyperCommand(cmd_name, help=lazy.help)
            self.commands[cmd_name] = load_command(cmd_name, lazy)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="modyard",
    help="Operate a modyard cluster: status, tokens, modules, diagnostics and the local dev environment.",
    no_args_is_help=True,
    add_completion=False,
    cls=LazyGroup,
)

STATE_STYLE = {"up": "green", "down": "red", "unavailable": "yellow"}


@app.command()
def status(
    as_json: JsonOption = False,
    services_only: Annotated[
        bool, typer.Option("--services-only", help="Skip the infrastructure checks.")
    ] = False,
) -> None:
    """Health of every service and of the infrastructure; exits 1 if a required part is down."""
    import asyncio

    from rich.table import Table

    from modyard.common.settings import CommonSettings
    from modyard.sdk.client import ModyardClient
    from modyard.sdk.status import healthy, infrastructure_checks, service_checks

    settings = CommonSettings()

    async def gather() -> list[Check]:
        async with ModyardClient.from_settings(settings) as client:
            services = await service_checks(client)
        infrastructure = [] if services_only else await infrastructure_checks(settings)
        return services + infrastructure

    checks = asyncio.run(gather())
    ok = healthy(checks)
    if as_json:
        typer.echo(
            json.dumps({"healthy": ok, "checks": [asdict(check) for check in checks]}, indent=2)
        )
    else:
        table = Table(title="modyard status", show_lines=False)
        for column in ("kind", "name", "url", "state", "detail"):
            table.add_column(column)
        for check in checks:
            style = STATE_STYLE[check.state]
            table.add_row(
                check.kind, check.name, check.url, f"[{style}]{check.state}[/]", check.detail
            )
        console.print(table)
        console.print("[green]all green[/]" if ok else "[red]something required is down[/]")
    raise typer.Exit(0 if ok else 1)


@app.command()
def ping(
    sender: Annotated[
        str, typer.Option("--from", help="Service that sends the ping.")
    ] = "registry",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service.")] = 15.0,
    as_json: JsonOption = False,
) -> None:
    """Send an event through one service's outbox and wait until every service has consumed it."""
    import asyncio

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from modyard.common.settings import CommonSettings
    from modyard.sdk.client import SERVICES, ModyardAPIError, ModyardClient
    from modyard.sdk.tokens import operator_token

    settings = CommonSettings()

    async def run() -> dict[str, int]:
        async with ModyardClient.from_settings(settings, token=operator_token(settings)) as client:
            sent = await client.send_ping(sender)
            received: dict[str, int] = {}
            deadline = time.monotonic() + timeout
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
                disable=as_json,
            ) as progress:
                task = progress.add_task(
                    f"ping {sent.ping_id[:8]} from {sender}", total=len(SERVICES)
                )
                while time.monotonic() < deadline and len(received) < len(SERVICES):
                    for service in SERVICES:
                        if service in received:
                            continue
                        receipts = await client.ping_receipts(service, sent.ping_id)
                        if receipts.receipts:
                            received[service] = len(receipts.receipts)
                            progress.advance(task)
                    await asyncio.sleep(0.1)
            return received

    try:
        received = asyncio.run(run())
    except ModyardAPIError as exc:
        err_console.print(f"[red]{exc.status}[/] {exc.detail}")
        raise typer.Exit(1) from exc
    ok = len(received) == len(SERVICES) and all(count == 1 for count in received.values())
    if as_json:
        typer.echo(json.dumps({"ok": ok, "received": received}))
    else:
        for service in SERVICES:
            count = received.get(service, 0)
            style = "green" if count == 1 else "red"
            console.print(f"[{style}]{service:16}[/] received {count} time(s)")
    raise typer.Exit(0 if ok else 1)


@app.command("secret-key")
def secret_key() -> None:
    """Print a new Fernet key for a service's MODYARD_<SERVICE>_SECRET_KEYS (put it first to
    rotate)."""
    typer.echo(base64.urlsafe_b64encode(os.urandom(32)).decode())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
