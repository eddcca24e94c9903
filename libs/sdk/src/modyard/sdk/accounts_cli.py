"""``modyard accounts …``: the caller's accounts in a workspace (third-party credentials that
components use as ``context.auth``; see docs/accounts.md). They belong to the token's subject:
set ``MODYARD_TOKEN`` to a user's token to act as that user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from modyard.sdk.cli_support import JsonOption, call_api, console, echo_json, fail

accounts_app = typer.Typer(
    help="Accounts (third-party credentials) of a workspace: list, add, test, delete.",
    no_args_is_help=True,
)

WorkspaceOption = Annotated[str, typer.Option("--workspace", "-w", help="The workspace's slug.")]
AccountArgument = Annotated[str, typer.Argument(help="The account's id (modyard accounts list).")]


async def _installer(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    response = await client._request(method, "installer", path, **kwargs)
    return response.json() if response.content else None


@accounts_app.command("list")
def list_accounts(
    workspace: WorkspaceOption,
    service: Annotated[
        str | None, typer.Option("--service", help="Only this auth service (vendor:service).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Your accounts (every account's name for operators; never credentials), newest first."""
    params: dict[str, str] = {"service": service} if service else {}
    items: list[dict[str, Any]] = []

    async def every_page(client: Any) -> None:
        query = dict(params)
        while True:
            page = await _installer(
                client, "GET", f"/v1/workspaces/{workspace}/accounts", params=query
            )
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return
            query["cursor"] = page["next_cursor"]

    call_api(every_page)
    if as_json:
        echo_json(items)
        return
    if not items:
        console.print(
            f"no accounts yet: modyard accounts add SERVICE -w {workspace} --set FIELD=VALUE"
        )
        return
    table = Table()
    for column in ("id", "service", "name", "type", "owner", "status"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item["id"], item["service"], item["name"], item["type"], item["owner"], item["status"]
        )
    console.print(table)


def _credentials(values: list[str] | None, from_file: Path | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if from_file is not None:
        try:
            loaded = json.loads(from_file.read_text())
        except (OSError, ValueError) as exc:
            raise fail(f"{from_file}: not a JSON object of the form's fields ({exc})") from exc
        if not isinstance(loaded, dict):
            raise fail(f"{from_file}: not a JSON object of the form's fields")
        found.update(loaded)
    for value in values or []:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise fail(f"--set {value!r}: write FIELD=VALUE, e.g. --set apiKey=sk-…")
        found[name] = text
    return found


@accounts_app.command("add")
def add_account(
    service: Annotated[str, typer.Argument(help="The auth service, e.g. appmixer:openai.")],
    workspace: WorkspaceOption,
    values: Annotated[
        list[str] | None,
        typer.Option("--set", help="A field of the service's form: FIELD=VALUE; repeat."),
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="A JSON object of the form's fields.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="A name; the vendor's by default.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an API-key or password account; the vendor checks it first (auth.js's validate).
    Without --set, shows the service's form."""
    credentials = _credentials(values, from_file)
    if not credentials:
        services = call_api(
            lambda client: _installer(client, "GET", f"/v1/workspaces/{workspace}/auth-services")
        )
        for item in services:
            if item["service"] == service:
                console.print(f"[bold]{escape(service)}[/] ({item['type']}) asks for:")
                for field, spec in item["fields"].items():
                    label = (spec or {}).get("name") or field
                    console.print(f"  --set {escape(field)}=…   {escape(str(label))}")
                if item["type"] == "oauth2":
                    console.print("  (OAuth 2: connect it in the backoffice, Accounts → Connect)")
                return
        raise fail(f"workspace {workspace!r} has no auth service {service!r}")
    body: dict[str, Any] = {"service": service, "credentials": credentials}
    if name:
        body["name"] = name
    created = call_api(
        lambda client: _installer(client, "POST", f"/v1/workspaces/{workspace}/accounts", json=body)
    )
    if as_json:
        echo_json(created)
    else:
        console.print(
            f"[green]✓[/] account {escape(created['name'])} ({created['id']}) added for "
            f"{escape(service)}"
        )


@accounts_app.command("test")
def check_account(
    account: AccountArgument, workspace: WorkspaceOption, as_json: JsonOption = False
) -> None:
    """Ask the vendor again whether the account's credentials work."""
    found = call_api(
        lambda client: _installer(
            client, "POST", f"/v1/workspaces/{workspace}/accounts/{account}/test"
        )
    )
    if as_json:
        echo_json(found)
    elif found["valid"]:
        console.print(f"[green]✓[/] {escape(found['account']['name'])} works")
    else:
        raise fail(f"the vendor refused {found['account']['name']}: {found['message']}")


@accounts_app.command("delete")
def delete_account(
    account: AccountArgument, workspace: WorkspaceOption, as_json: JsonOption = False
) -> None:
    """Delete one of your accounts (flows naming it no longer start)."""
    call_api(
        lambda client: _installer(
            client, "DELETE", f"/v1/workspaces/{workspace}/accounts/{account}"
        )
    )
    if as_json:
        echo_json({"id": account, "deleted": True})
    else:
        console.print(f"[green]✓[/] account {escape(account)} deleted")
