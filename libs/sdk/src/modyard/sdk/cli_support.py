"""What every ``modyard`` command shares: consoles, ``--json``, the API client, error display."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from modyard.common.settings import CommonSettings
from modyard.sdk.client import ModyardAPIError, ModyardClient
from modyard.sdk.tokens import operator_token

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WorkspaceOption = Annotated[str, typer.Option("--workspace", "-w", help="The workspace.")]


def echo_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout (what ``--json`` prints)."""
    typer.echo(json.dumps(value))


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(1)


def api_client(settings: CommonSettings) -> ModyardClient:
    return ModyardClient.from_settings(settings, token=operator_token(settings))


def call_api(operation: Callable[[ModyardClient], Awaitable[T]]) -> T:
    """Run one API operation with a fresh client (see :func:`run_api` for errors)."""

    async def run() -> T:
        async with api_client(CommonSettings()) as client:
            return await operation(client)

    return run_api(run())


def run_api(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an API call; a problem answer is shown with every failing field, then exits 1."""
    try:
        return asyncio.run(coroutine)
    except ModyardAPIError as exc:
        for error in exc.problem.get("errors") or []:
            location = (error.get("file") or "") + error.get("pointer", "")
            err_console.print(f"[red]✗[/] {escape(location)}: {escape(str(error.get('detail')))}")
        for link in exc.problem.get("chain") or []:
            err_console.print(f"  [yellow]↳[/] {escape(str(link))}")
        raise fail(f"{exc.status} {exc.detail}") from exc
