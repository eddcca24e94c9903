"""``modyard workspaces …``: the installer's workspaces (tenants) and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from modyard.sdk.cli_support import JsonOption, call_api, console, echo_json

if TYPE_CHECKING:
    from modyard.contracts.api.installer import WorkspaceOut

workspaces_app = typer.Typer(
    help="Workspaces (tenants) and their members: list, create, show, components, delete.",
    no_args_is_help=True,
)
members_app = typer.Typer(help="Who belongs to a workspace, and as what.", no_args_is_help=True)
workspaces_app.add_typer(members_app, name="members")

SlugArgument = Annotated[str, typer.Argument(help="The workspace's slug, e.g. acme.")]


def _members(workspace: WorkspaceOut) -> str:
    return ", ".join(f"{m.subject} ({m.role})" for m in workspace.members) or "-"


def _show(workspace: WorkspaceOut, as_json: bool) -> None:
    if as_json:
        echo_json(workspace)
        return
    console.print(f"[bold]{escape(workspace.slug)}[/] {escape(workspace.name)}")
    console.print(f"  created  {workspace.created_at}")
    console.print(f"  members  {escape(_members(workspace))}")


@workspaces_app.command("list")
def list_workspaces(as_json: JsonOption = False) -> None:
    """The workspaces the caller may act in (all of them for operators)."""
    items = call_api(lambda client: client.installer.workspaces())
    if as_json:
        echo_json(items)
        return
    if not items:
        console.print("no workspaces yet: modyard workspaces create SLUG --name NAME")
        return
    table = Table()
    for column in ("slug", "name", "members", "created"):
        table.add_column(column)
    for item in items:
        table.add_row(item.slug, item.name, _members(item), str(item.created_at))
    console.print(table)


@workspaces_app.command("create")
def create_workspace(
    slug: SlugArgument,
    name: Annotated[
        str | None, typer.Option("--name", help="A human name; the slug by default.")
    ] = None,
    member: Annotated[
        list[str] | None,
        typer.Option("--member", "-m", help="A member's subject (email); repeat for several."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a workspace (operators)."""
    created = call_api(
        lambda client: client.installer.create_workspace(slug, name or slug, member or [])
    )
    if as_json:
        echo_json(created)
    else:
        console.print(f"[green]✓[/] workspace {escape(created.slug)} created")


@workspaces_app.command("show")
def show_workspace(slug: SlugArgument, as_json: JsonOption = False) -> None:
    """One workspace and its members."""
    _show(call_api(lambda client: client.installer.workspace(slug)), as_json)


@workspaces_app.command("components")
def list_components(
    slug: SlugArgument,
    as_user: Annotated[
        str | None, typer.Option("--as", help="List for this user (operators and services).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The components you (or --as someone) may use, with the ref a flow node's component takes."""
    items = call_api(lambda client: client.installer.components(slug, as_user=as_user))
    if as_json:
        echo_json(items)
        return
    table = Table()
    # The ref is there to be copied: never folded, the other columns give way.
    widest = max((len(item.ref) for item in items), default=3)
    table.add_column("ref", no_wrap=True, min_width=widest)
    for column in ("role", "installation", "module", "version", "label"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item.ref,
            item.role,
            item.installation,
            item.module,
            item.version,
            item.label or "",
        )
    console.print(table)


@workspaces_app.command("delete")
def delete_workspace(slug: SlugArgument, as_json: JsonOption = False) -> None:
    """Delete an empty workspace (operators); refused while it has installations."""
    call_api(lambda client: client.installer.delete_workspace(slug))
    if as_json:
        echo_json({"slug": slug, "deleted": True})
    else:
        console.print(f"[green]✓[/] workspace {escape(slug)} deleted")


@members_app.command("add")
def add_member(
    slug: SlugArgument,
    subject: Annotated[str, typer.Argument(help="Who: the subject (email) of their tokens.")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="member, publisher (may also publish the workspace as an app) or owner.",
        ),
    ] = "member",
    as_json: JsonOption = False,
) -> None:
    """Add a member, or change their role (operators)."""
    workspace = call_api(lambda client: client.installer.set_member(slug, subject, role))
    if as_json:
        echo_json(workspace)
    else:
        console.print(f"[green]✓[/] {escape(subject)} is a {escape(role)} of {escape(slug)}")


@members_app.command("remove")
def remove_member(
    slug: SlugArgument,
    subject: Annotated[str, typer.Argument(help="Who: the subject (email) of their tokens.")],
    as_json: JsonOption = False,
) -> None:
    """Remove a member (operators): their tokens naming the workspace are refused from now on."""
    workspace = call_api(lambda client: client.installer.remove_member(slug, subject))
    if as_json:
        echo_json(workspace)
    else:
        console.print(f"[green]✓[/] {escape(subject)} removed from {escape(slug)}")
