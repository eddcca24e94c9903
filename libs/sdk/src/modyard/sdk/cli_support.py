"""What every ``modyard`` command shares: consoles, ``--json``, the API client, error display."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

# The client (httpx, pydantic) and the settings are imported where a command calls an API, not
# here: every command module imports this one, and `modyard --help` should not pay for them.
if TYPE_CHECKING:
    from modyard.common.settings import CommonSettings
    from modyard.sdk.client import ModyardClient

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
WorkspaceOption = Annotated[str, typer.Option("--workspace", "-w", help="The workspace.")]


def echo_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout (what ``--json`` prints); an API answer
    (modyard.contracts.api) as the service sent it."""
    typer.echo(json.dumps(_plain(value)))


def _plain(value: Any) -> Any:
    from modyard.contracts.api import ApiModel

    if isinstance(value, ApiModel):
        return value.as_json()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(1)


def api_client(settings: CommonSettings) -> ModyardClient:
    from modyard.sdk.client import ModyardClient
    from modyard.sdk.tokens import operator_token

    return ModyardClient.from_settings(settings, token=operator_token(settings))


def call_api(operation: Callable[[ModyardClient], Awaitable[T]]) -> T:
    """Run one API operation with a fresh client (see :func:`run_api` for errors)."""
    from modyard.common.settings import CommonSettings

    async def run() -> T:
        async with api_client(CommonSettings()) as client:
            return await operation(client)

    return run_api(run())


def problem_words(status: int, problem: dict[str, Any]) -> str:
    """A problem answer in one line: status, what kind of problem, and what to change."""
    kind = str(problem.get("type") or "").rstrip("/").rsplit("/", 1)[-1]
    title = str(problem.get("title") or "")
    detail = str(problem.get("detail") or title or "no detail")
    named = f" {kind}" if kind and kind != "about:blank" else (f" {title}" if title else "")
    return f"{status}{named}: {detail}"


def run_api(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an API call; a problem answer is shown with every failing field, then exits 1."""
    import httpx

    from modyard.sdk.client import ModyardAPIError

    try:
        return asyncio.run(coroutine)
    except ModyardAPIError as exc:
        for error in exc.problem.get("errors") or []:
            location = (error.get("file") or "") + error.get("pointer", "")
            err_console.print(f"[red]✗[/] {escape(location)}: {escape(str(error.get('detail')))}")
        for link in exc.problem.get("chain") or []:
            err_console.print(f"  [yellow]↳[/] {escape(str(link))}")
        raise fail(problem_words(exc.status, exc.problem)) from exc
    except httpx.TransportError as exc:
        where = str(exc.request.url.copy_with(path="/", query=None)) if _has_request(exc) else "?"
        raise fail(
            f"cannot reach {where} ({type(exc).__name__}: {exc}); is the service running? "
            "Its URL comes from MODYARD_<SERVICE>_URL (e.g. MODYARD_INSTALLER_URL)."
        ) from exc


def _has_request(exc: Any) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when the error has no request
    except RuntimeError:
        return False
    return True
