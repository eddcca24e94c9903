"""``modyard cells …`` (the appcell-gateway's API) and ``modyard cell run`` (the cell SDK)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from modyard.common.logging import configure_logging
from modyard.sdk.cli_support import JsonOption, call_api, console, echo_json, fail

cells_app = typer.Typer(
    help="Installed AppCell cells: catalogue, credentials, calling actions, the request log.",
    no_args_is_help=True,
)
cell_app = typer.Typer(help="Run a cell (or a module worker) built with the cell SDK.")

CellArgument = Annotated[str, typer.Argument(help="Installation id or '<workspace>:<slug>'.")]
STATUS_STYLE = {"ready": "green", "invalid": "red", "removed": "yellow", "success": "green"}


def _styled(value: str) -> str:
    style = STATUS_STYLE.get(value, "red")
    return f"[{style}]{escape(value)}[/]"


@cells_app.command("list")
def cells_list(
    workspace: Annotated[str | None, typer.Option("--workspace", "-w")] = None,
    status: Annotated[str | None, typer.Option(help="ready, invalid or removed")] = None,
    as_json: JsonOption = False,
) -> None:
    """The installed cells."""
    cells = call_api(lambda client: client.gateway.cells(workspace=workspace, status=status))
    if as_json:
        echo_json(cells)
        return
    table = Table("installation", "cell", "module", "version", "status", "plugins")
    for cell in cells:
        table.add_row(
            cell.installation_id,
            escape(f"{cell.workspace}:{cell.slug}"),
            escape(cell.module),
            cell.version,
            _styled(cell.status) + (f" {escape(cell.error)}" if cell.error else ""),
            escape(", ".join(cell.plugins)),
        )
    console.print(table)


@cells_app.command("show")
def cells_show(cell: CellArgument, as_json: JsonOption = False) -> None:
    """One cell: its plugins and actions with their security and schemas."""
    found = call_api(lambda client: client.gateway.cell(cell))
    if as_json:
        echo_json(found)
        return
    console.print(
        f"[bold]{escape(found.label or found.module)}[/] {found.version} "
        f"({found.workspace}:{found.slug}, {found.installation_id}): " + _styled(found.status)
    )
    if found.error:
        console.print(f"[red]{escape(found.error)}[/]")
    console.print(f"queue: {found.queue}")
    for plugin, entry in found.plugin_actions.items():
        table = Table("action", "resource", "security", "payload", "result", "postpayload")
        for key, executions in entry["actions"].items():
            for execution in executions:
                table.add_row(
                    escape(key),
                    escape(execution["resource"]),
                    escape(execution["security"]),
                    _schema_label(execution["payload"]),
                    _schema_label(execution["result"]),
                    "yes" if execution["postpayload"] else "",
                )
        table.title = f"plugin {plugin}"
        console.print(table)


def _schema_label(view: dict[str, Any] | None) -> str:
    if view is None:
        return ""
    return "inline" if view.get("inline") else escape(str(view.get("path")))


@cells_app.command("credentials")
def cells_credentials(cell: CellArgument, as_json: JsonOption = False) -> None:
    """The broker URL, vhost and queue the cell's worker uses (operators only)."""
    found = call_api(lambda client: client.gateway.credentials(cell))
    if as_json:
        echo_json(found)
        return
    for key in ("amqp_url", "vhost", "username", "queue", "reply_exchange"):
        console.print(f"{key}: {escape(str(found.as_json()[key]))}")


@cells_app.command("call")
def cells_call(
    cell: CellArgument,
    plugin: Annotated[str, typer.Argument(help="The plugin (plugin.json).")],
    action: Annotated[str, typer.Argument(help="The action key, e.g. create or fetchAll.Contact.")],
    payload: Annotated[
        Path | None,
        typer.Option(
            "--payload", "-p", exists=True, dir_okay=False, help="JSON or YAML payload file."
        ),
    ] = None,
    customer_product_id: Annotated[str | None, typer.Option("--customer-product")] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Your id for this call: repeated with the same key, it runs once."),
    ] = None,
) -> None:
    """Run one action through the gateway and print {status, result, postpayload}."""
    body: Any = {}
    if payload is not None:
        try:
            body = yaml.safe_load(payload.read_text())
        except yaml.YAMLError as exc:
            raise typer.BadParameter(f"{payload} is not JSON or YAML: {exc}") from exc
    answer = call_api(
        lambda client: client.gateway.call(
            cell,
            plugin,
            action,
            body,
            customer_product_id=customer_product_id,
            idempotency_key=idempotency_key,
        )
    )
    echo_json(answer)


@cells_app.command("requests")
def cells_requests(
    cell: Annotated[
        str | None, typer.Option(help="Installation id or '<workspace>:<slug>'.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="success, error, or a problem slug (cell-timeout …)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Recent requests through the gateway, with latency and outcome."""
    rows = call_api(lambda client: client.gateway.requests(cell=cell, status=status, limit=limit))
    if as_json:
        echo_json(rows)
        return
    table = Table("time", "cell", "plugin", "action", "ingress", "outcome", "status", "ms")
    for row in rows:
        table.add_row(
            row.created_at,
            escape(row.cell or ""),
            escape(row.plugin or ""),
            escape(row.action or ""),
            row.ingress,
            _styled(row.outcome),
            str(row.status_code),
            f"{row.latency_ms:.1f}",
        )
    console.print(table)


@cell_app.command("run")
def cell_run(
    target: Annotated[str, typer.Argument(help="module:attribute naming a Cell or ModuleWorker.")],
    amqp_url: Annotated[
        str | None,
        typer.Option(envvar="MODYARD_CELL_AMQP_URL", help="Broker URL with the cell's user."),
    ] = None,
    queue: Annotated[
        str | None, typer.Option(envvar="MODYARD_CELL_QUEUE", help="The cell's request queue.")
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="JSON from `modyard cells credentials --json` or `modyard workers credentials --json` (amqp_url and queue).",
        ),
    ] = None,
    installation: Annotated[
        str | None,
        typer.Option(help="Fetch the credentials of this cell from the gateway (operator token)."),
    ] = None,
    prefetch: Annotated[int, typer.Option(min=1, envvar="MODYARD_CELL_PREFETCH")] = 32,
    concurrency: Annotated[int, typer.Option(min=1, envvar="MODYARD_CELL_CONCURRENCY")] = 32,
    shutdown_timeout: Annotated[float, typer.Option(min=0)] = 30.0,
    log_level: Annotated[str, typer.Option(envvar="MODYARD_LOG_LEVEL")] = "INFO",
) -> None:
    """Run a cell until SIGTERM/SIGINT; requests in flight are finished before it exits."""
    # Imported here: the worker pulls in the AMQP client, which no other command needs.
    from modyard.cell.worker import WorkerOptions
    from modyard.sdk.cell.runner import load_target, serve

    try:
        runnable = load_target(target)
    except (ValueError, ImportError) as exc:
        raise fail(str(exc)) from exc
    if credentials is not None:
        given = json.loads(credentials.read_text())
        amqp_url, queue = amqp_url or given["amqp_url"], queue or given["queue"]
    elif installation is not None:
        issued = call_api(lambda client: client.gateway.credentials(installation))
        amqp_url, queue = amqp_url or issued.amqp_url, queue or issued.queue
    amqp_url = amqp_url or os.environ.get("MODYARD_AMQP_URL")
    if not amqp_url:
        raise fail("give --amqp-url, --credentials or --installation (or MODYARD_CELL_AMQP_URL)")
    configure_logging(service=f"cell-{runnable.name}", level=log_level)
    options = WorkerOptions(
        amqp_url=amqp_url,
        queue=queue,
        prefetch=prefetch,
        concurrency=concurrency,
        shutdown_timeout=shutdown_timeout,
    )
    _fast_event_loop()
    try:
        asyncio.run(serve(runnable, options))
    except (OSError, TimeoutError) as exc:  # BusUnavailable is one: refused, unreachable
        reason = (str(exc) or type(exc).__name__).rstrip(".")
        raise fail(
            f"cannot start {runnable.name}: {reason}. Check --amqp-url (or the credentials, "
            "`modyard cells credentials`) and that the broker is reachable."
        ) from exc


def _fast_event_loop() -> None:
    """uvloop when installed (it comes with uvicorn[standard]): less CPU per message."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        return
    uvloop.install()
