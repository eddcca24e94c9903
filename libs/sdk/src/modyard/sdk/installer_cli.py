"""``modyard install``, ``modyard installations …`` and ``modyard acl …``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.table import Table

from modyard.sdk.cli_support import JsonOption, WorkspaceOption, call_api, console, echo_json

if TYPE_CHECKING:
    from modyard.contracts.api.installer import InstallationOut

installations_app = typer.Typer(
    help="Installed modules (app instances) of a workspace.", no_args_is_help=True
)
acl_app = typer.Typer(help="Who may use which components and routes.", no_args_is_help=True)


def _read_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    document = yaml.safe_load(path.read_text())  # YAML is a superset of JSON: both work
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path} must hold an object of configuration values")
    return document


def _print(result: InstallationOut, as_json: bool) -> None:
    if as_json:
        echo_json(result)
    else:
        console.print(
            f"[green]✓[/] {result.workspace}/{result.slug}: {result.module} {result.version}"
            + (" (pinned)" if result.pinned else "")
        )


def install(
    module: Annotated[str, typer.Argument(help="MODULE or MODULE@RANGE, e.g. acme-weather@^1.2")],
    workspace: WorkspaceOption,
    slug: Annotated[
        str | None, typer.Option(help="Instance name; the module name by default.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="JSON or YAML file.")
    ] = None,
    pin: Annotated[
        bool, typer.Option("--pin", help="Never follow new versions automatically.")
    ] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes a retried install safe.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Install a module and its dependencies in a workspace."""
    name, _, version = module.partition("@")

    result = call_api(
        lambda client: client.installer.install(
            workspace,
            name,
            version=version or None,
            slug=slug,
            config=_read_config(config),
            pinned=pin,
            idempotency_key=idempotency_key,
        )
    )
    _print(result, as_json)
    if not as_json and result.also_installed:
        console.print(f"  also installed: {', '.join(result.also_installed)}")


@installations_app.command("list")
def list_installations(workspace: WorkspaceOption, as_json: JsonOption = False) -> None:
    items = call_api(lambda client: client.installer.installations(workspace))
    if as_json:
        echo_json(items)
        return
    table = Table("slug", "module", "version", "pinned", "parent", "dependencies")
    for item in items:
        table.add_row(
            item.slug,
            item.module,
            item.version,
            "yes" if item.pinned else "",
            item.parent or "",
            ", ".join(item.dependencies),
        )
    console.print(table)


@installations_app.command("show")
def show(slug: str, workspace: WorkspaceOption) -> None:
    """One installation (secrets masked), as JSON."""

    installation = call_api(lambda client: client.installer.installation(workspace, slug))
    typer.echo(json.dumps(installation.as_json(), indent=2))


@installations_app.command("configure")
def configure(
    slug: str,
    workspace: WorkspaceOption,
    config: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="JSON or YAML merge patch.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Change an installation's configuration (merged into the current one, then validated)."""

    _print(
        call_api(lambda client: client.installer.configure(workspace, slug, _read_config(config))),
        as_json,
    )


@installations_app.command("upgrade")
def upgrade(
    slug: str,
    workspace: WorkspaceOption,
    version: Annotated[
        str | None, typer.Option(help="Exact version or range; newest by default.")
    ] = None,
    accept_breaking: Annotated[
        bool, typer.Option("--accept-breaking", help="Allow a new major version.")
    ] = False,
    as_json: JsonOption = False,
) -> None:

    _print(
        call_api(
            lambda client: client.installer.upgrade(
                workspace, slug, version, accept_breaking=accept_breaking
            )
        ),
        as_json,
    )


@installations_app.command("remove")
def remove(
    slug: str,
    workspace: WorkspaceOption,
    force: Annotated[
        bool, typer.Option("--force", help="Even if other installations need it.")
    ] = False,
) -> None:
    call_api(lambda client: client.installer.remove(workspace, slug, force=force))
    console.print(f"[yellow]removed[/] {workspace}/{slug}")


@acl_app.command("list")
def acl_list(
    acl_type: Annotated[str, typer.Argument(help="components or routes")] = "components",
    as_json: JsonOption = False,
) -> None:
    rules = call_api(lambda client: client.installer.acl_rules(acl_type))
    if as_json:
        echo_json(rules)
        return
    table = Table("id", "who", "resource", "action", "attributes")
    for rule in rules:
        who = (rule.role and f"role:{rule.role}") or rule.user or f"@{rule.domain}"
        table.add_row(
            rule.id,
            who,
            rule.resource,
            rule.action,
            json.dumps(rule.attributes) if rule.attributes else "",
        )
    console.print(table)


@acl_app.command("add")
def acl_add(
    resource: Annotated[str, typer.Argument(help="e.g. appmixer.acme.* ")],
    acl_type: Annotated[str, typer.Option("--type", help="components or routes")] = "components",
    role: Annotated[str | None, typer.Option(help="A role, e.g. user")] = None,
    user: Annotated[str | None, typer.Option(help="An email")] = None,
    domain: Annotated[str | None, typer.Option(help="An email domain")] = None,
    action: Annotated[str, typer.Option(help="e.g. use, or * for all")] = "*",
    as_json: JsonOption = False,
) -> None:
    """Allow a role, a user or an email domain to act on resources."""
    rule = {
        key: value for key, value in {"role": role, "user": user, "domain": domain}.items() if value
    }
    rule |= {"resource": resource, "action": action}

    added = call_api(lambda client: client.installer.add_acl_rule(acl_type, rule))
    typer.echo(json.dumps(added.as_json()) if as_json else f"added rule {added.id}")


@acl_app.command("remove")
def acl_remove(
    rule_id: str,
    acl_type: Annotated[str, typer.Option("--type", help="components or routes")] = "components",
) -> None:
    call_api(lambda client: client.installer.remove_acl_rule(acl_type, rule_id))
    typer.echo(f"removed rule {rule_id}")
