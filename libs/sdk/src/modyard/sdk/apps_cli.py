"""``modyard apps …`` and ``modyard automations …``: apps and automations of the runtime."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from modyard.sdk.cli_support import JsonOption, WorkspaceOption, call_api, console, echo_json

apps_app = typer.Typer(
    help="Apps: publish a workspace as an app, list apps and a workspace's instances.",
    no_args_is_help=True,
)
automations_app = typer.Typer(
    help="Automations of a workspace: save, list, run.", no_args_is_help=True
)


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())  # YAML is a superset of JSON: both work
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path} is not JSON or YAML: {exc}") from exc


@apps_app.command("publish")
def apps_publish(
    workspace: WorkspaceOption,
    name: Annotated[str, typer.Argument(help="The app's name (fixed by the first publish).")],
    as_json: JsonOption = False,
) -> None:
    """Publish the workspace as a new immutable version of its app."""
    result = call_api(lambda client: client.automations.publish(workspace, name))
    if as_json:
        echo_json(result)
        return
    console.print(
        f"[green]✓[/] published {escape(workspace)} as {escape(result.app)} "
        f"{escape(result.version)}"
    )


@apps_app.command("list")
def apps_list(
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", "-w", help="List this workspace's app instances instead."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Published apps, or with --workspace the app instances installed in it."""
    if workspace is None:
        apps = call_api(lambda client: client.automations.apps())
        if as_json:
            echo_json(apps)
            return
        table = Table("app", "version", "workspace", "label", "description")
        for app in apps:
            table.add_row(
                escape(app.app),
                escape(app.version or ""),
                escape(app.workspace),
                escape(app.label or ""),
                escape(app.description or ""),
            )
        console.print(table)
        return
    instances = call_api(lambda client: client.automations.instances(workspace))
    if as_json:
        echo_json(instances)
        return
    table = Table("instance", "app", "version", "pinned", "endpoints", "automations")
    for item in instances:
        table.add_row(
            escape(item.slug),
            escape(item.app),
            escape(item.version),
            "yes" if item.pinned else "",
            escape(", ".join(a.endpoint for a in item.automations if a.endpoint)),
            escape(", ".join(a.slug for a in item.automations)),
        )
    console.print(table)


@automations_app.command("run")
def automations_run(
    name: Annotated[str, typer.Argument(help="The automation, or <instance>.<automation>.")],
    workspace: WorkspaceOption,
    payload: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="JSON or YAML object: the arguments."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run an automation now and print its output."""
    arguments = _read(payload) if payload is not None else {}
    if not isinstance(arguments, dict):
        raise typer.BadParameter("must hold an object of arguments", param_hint="--payload")
    result = call_api(lambda client: client.automations.run(workspace, name, arguments))
    if as_json:
        echo_json(result)
        return
    console.print_json(json.dumps(result.output))
    for event in result.emitted:
        console.print(f"[cyan]emitted[/] {escape(event['type'])}")


@automations_app.command("save")
def automations_save(
    slug: Annotated[str, typer.Argument(help="The automation's slug.")],
    workspace: WorkspaceOption,
    file: Annotated[
        Path,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="The automation, YAML."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Create or replace an automation (checked: errors are listed with their pointers)."""
    definition = _read(file)
    if not isinstance(definition, dict):
        raise typer.BadParameter("must hold an automation: {do, when?, output?, …}")
    result = call_api(lambda client: client.automations.save(workspace, slug, definition))
    if as_json:
        echo_json(result)
        return
    console.print(f"[green]✓[/] saved automation {escape(result.slug)}")


@automations_app.command("import")
def automations_import(
    workspace: WorkspaceOption,
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="A Prisme.ai workspace YAML."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Replace the workspace's automations and app settings with a workspace source file."""
    source = _read(file)
    if not isinstance(source, dict):
        raise typer.BadParameter("must hold a workspace: {name, config?, automations}")
    result = call_api(lambda client: client.automations.import_source(workspace, source))
    if as_json:
        echo_json(result)
        return
    console.print(
        f"[green]✓[/] imported {len(result.automations)} automation(s) into "
        f"{escape(workspace)}: {escape(', '.join(result.automations))}"
    )


@automations_app.command("list")
def automations_list(workspace: WorkspaceOption, as_json: JsonOption = False) -> None:
    """The workspace's own automations."""
    items = call_api(lambda client: client.automations.automations(workspace))
    if as_json:
        echo_json(items)
        return
    table = Table("slug", "name", "private", "endpoint", "events", "schedules")
    for item in items:
        when = item.when
        table.add_row(
            escape(item.slug),
            escape(item.name),
            "yes" if item.private else "",
            "yes" if when.get("endpoint") else "",
            escape(", ".join(when.get("events") or [])),
            escape(", ".join(when.get("schedules") or [])),
        )
    console.print(table)
