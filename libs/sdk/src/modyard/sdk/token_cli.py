"""``modyard token`` (mint a development token) and ``modyard token revoke``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from modyard.common.settings import CommonSettings
from modyard.common.tokens import DEFAULT_TOKEN_TTL_SECONDS, Role, decode_token, mint_token
from modyard.sdk.cli_support import JsonOption, call_api, console, echo_json, err_console

token_app = typer.Typer(
    help="Tokens: mint a development token (no sub-command), or revoke one.",
    no_args_is_help=False,
    add_completion=False,
)


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
            f"revoked token {revoked.jti} of {revoked.subject or '(unknown subject)'} "
            f"(kept until {revoked.expires_at})"
        )
