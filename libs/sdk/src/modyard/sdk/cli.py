"""The ``modyard`` command line: one command per operator task, ``--json`` for scripts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from dataclasses import asdict
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from modyard.common.settings import CommonSettings
from modyard.common.tokens import DEFAULT_TOKEN_TTL_SECONDS, Role, decode_token, mint_token
from modyard.sdk.apps_cli import apps_app, automations_app
from modyard.sdk.cli_support import JsonOption, call_api, console, echo_json, err_console
from modyard.sdk.client import SERVICES, ModyardAPIError, ModyardClient
from modyard.sdk.deployer_cli import deploy_app
from modyard.sdk.dev.cli import app as dev_app
from modyard.sdk.gateway_cli import cell_app, cells_app
from modyard.sdk.installer_cli import acl_app, install, installations_app
from modyard.sdk.modules_cli import modules_app, pack, publish
from modyard.sdk.runtime_cli import dlq_app, flows_app, webhooks_app, workers_app
from modyard.sdk.status import Check, healthy, infrastructure_checks, service_checks
from modyard.sdk.tokens import operator_token

app = typer.Typer(
    name="modyard",
    help="Operate a modyard cluster: status, tokens, modules, diagnostics and the local dev environment.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(
    dev_app, name="dev", help="Local development: infrastructure, migrations, running the services."
)
app.add_typer(modules_app, name="modules")
app.command()(pack)
app.command()(publish)
app.command()(install)
app.add_typer(installations_app, name="installations")
app.add_typer(acl_app, name="acl")
app.add_typer(flows_app, name="flows")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(workers_app, name="workers")
app.add_typer(cells_app, name="cells")
app.add_typer(cell_app, name="cell")
app.add_typer(deploy_app, name="deploy")
app.add_typer(apps_app, name="apps")
app.add_typer(automations_app, name="automations")

STATE_STYLE = {"up": "green", "down": "red", "unavailable": "yellow"}


@app.command()
def status(
    as_json: JsonOption = False,
    services_only: Annotated[
        bool, typer.Option("--services-only", help="Skip the infrastructure checks.")
    ] = False,
) -> None:
    """Health of every service and of the infrastructure; exits 1 if a required part is down."""
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


token_app = typer.Typer(
    help="Tokens: mint a development token (no sub-command), or revoke one.",
    no_args_is_help=False,
    add_completion=False,
)
app.add_typer(token_app, name="token")


@token_app.callback(invoke_without_command=True)
def token(
    context: typer.Context,
    subject: Annotated[
        str, typer.Option("--subject", "-s", help="Who the token is for.")
    ] = "developer",
    role: Annotated[
        list[Role] | None,
        typer.Option("--role", "-r", help="Role; repeat for several. [default: operator]"),
    ] = None,
    workspace: Annotated[
        list[str] | None, typer.Option("--workspace", "-w", help="Workspace; repeat for several.")
    ] = None,
    ttl: Annotated[
        int,
        typer.Option(
            "--ttl",
            help="Lifetime in seconds (at most MODYARD_TOKEN_MAX_TTL_SECONDS for user tokens, "
            "MODYARD_OPERATOR_TOKEN_MAX_TTL_SECONDS for operator and service tokens).",
            min=1,
        ),
    ] = DEFAULT_TOKEN_TTL_SECONDS,
    as_json: JsonOption = False,
) -> None:
    """Mint a development token signed with the configured secret (MODYARD_JWT_SECRET)."""
    if context.invoked_subcommand is not None:
        return
    settings = CommonSettings()
    role = role or [Role.operator]
    workspace = workspace or []
    try:
        minted = mint_token(
            settings, subject=subject, roles=role, workspaces=workspace, ttl_seconds=ttl
        )
    except ValueError as exc:
        err_console.print(f"[red]cannot mint a token:[/] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        claims = decode_token(settings, minted)
        payload = {
            "token": minted,
            "jti": claims.token_id,
            "subject": subject,
            "roles": [r.value for r in role],
            "workspaces": workspace,
            "expires_at": claims.expires_at,
        }
        typer.echo(json.dumps(payload))
    else:
        typer.echo(minted)


@token_app.command("revoke")
def revoke_token(
    token: Annotated[
        str | None,
        typer.Argument(help="The token to revoke ('-' reads it from stdin).", show_default=False),
    ] = None,
    jti: Annotated[
        str | None, typer.Option("--jti", help="Revoke by token id instead (operators).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", "-s", help="Whose token --jti is, for the record.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a token at the installer: every service refuses it (401) within
    MODYARD_TOKEN_DENIALS_POLL_SECONDS. Sent with MODYARD_TOKEN (or a minted operator token)."""
    if (token is None) == (jti is None):
        err_console.print("[red]error:[/] give the token to revoke, or --jti (not both)")
        raise typer.Exit(2)
    if token == "-":  # noqa: S105 - stdin, not a password
        token = sys.stdin.read().strip()
    revoked = call_api(
        lambda client: client.installer.revoke_token(token=token, jti=jti, subject=subject)
    )
    if as_json:
        echo_json(revoked)
    else:
        console.print(
            f"revoked token {revoked['jti']} of {revoked['subject'] or '(unknown subject)'} "
            f"(kept until {revoked['expires_at']})"
        )


@app.command()
def ping(
    sender: Annotated[
        str, typer.Option("--from", help="Service that sends the ping.")
    ] = "registry",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service.")] = 15.0,
    as_json: JsonOption = False,
) -> None:
    """Send an event through one service's outbox and wait until every service has consumed it."""
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
