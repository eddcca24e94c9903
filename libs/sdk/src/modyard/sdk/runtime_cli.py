"""``modyard flows …``, ``modyard dlq …``, ``modyard webhooks …`` and ``modyard workers …``: the runtime's API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from modyard.common.settings import CommonSettings
from modyard.contracts.api.runtime import BulkResult, DeliveryOut, FlowOut, UnprocessedOut
from modyard.sdk.cli_support import (
    JsonOption,
    WorkspaceOption,
    api_client,
    call_api,
    console,
    echo_json,
    err_console,
    run_api,
)
from modyard.sdk.client import KEEP_PAYLOAD

T = TypeVar("T")

flows_app = typer.Typer(help="Flows of a workspace: create, start, stop.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Unprocessed messages (the dead-letter queue): inspect, retry, delete.",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(
    help="System webhooks: URLs the runtime tells about system events.", no_args_is_help=True
)
workers_app = typer.Typer(
    help="Module workers: the broker credentials of an installation's worker.",
    no_args_is_help=True,
)

FlowFile = Annotated[
    Path,
    typer.Option(
        "--file",
        "-f",
        exists=True,
        dir_okay=False,
        help="JSON or YAML: {name, description?, owner?, definition: {nodes, connections, retry_policy?}}.",
    ),
]
STATUS_STYLE = {
    "running": "green",
    "stopped": "yellow",
    "delivered": "green",
    "pending": "yellow",
    "failed": "red",
}


def _styled(value: str | None) -> str:
    text = escape(value or "")
    style = STATUS_STYLE.get(value or "")
    return f"[{style}]{text}[/]" if style else text


def _table(*columns: str) -> Table:
    """A table whose ``id`` column is never cut: IDs are what the other commands take."""
    table = Table()
    for column in columns:
        if column == "id":
            table.add_column(column, no_wrap=True, min_width=36)
        else:
            table.add_column(column)
    return table


def _read_document(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())  # YAML is a superset of JSON: both work
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path} is not JSON or YAML: {exc}") from exc


def _read_flow(path: Path) -> dict[str, Any]:
    document = _read_document(path)
    if not isinstance(document, dict):
        raise typer.BadParameter(
            f"{path} must hold an object: {{name, description?, owner?, definition}}"
        )
    return document


def _iso(value: str | None) -> str | None:
    """An ISO 8601 date or time, normalised (``Z`` becomes ``+00:00``)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2025-01-31T12:00:00+00:00"
        ) from exc


async def _take(items: AsyncIterator[T], limit: int) -> tuple[list[T], bool]:
    """Up to ``limit`` items, and whether there were more."""
    taken: list[T] = []
    async for item in items:
        if len(taken) == limit:
            return taken, True
        taken.append(item)
    return taken, False


# -- flows ----------------------------------------------------------------------------------------


def _show_flow(flow: FlowOut, verb: str, as_json: bool) -> None:
    if as_json:
        echo_json(flow)
    else:
        console.print(_flow_line(flow, verb))


def _flow_line(flow: FlowOut, verb: str) -> str:
    return f"[green]✓[/] {verb} flow {escape(flow.name)} ({flow.id}): {_styled(flow.status)}"


@flows_app.command("list")
def flows_list(
    workspace: WorkspaceOption,
    status: Annotated[
        str | None,
        typer.Option(help="Only flows in this state: running or stopped."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The workspace's flows."""
    if status is not None and status not in ("running", "stopped"):
        raise typer.BadParameter("must be running or stopped", param_hint="--status")
    flows = call_api(lambda client: client.runtime.flows(workspace, status=status))
    if as_json:
        echo_json(flows)
        return
    table = _table("id", "name", "status", "stop reason", "owner", "nodes", "rev", "updated")
    for flow in flows:
        table.add_row(
            flow.id,
            escape(flow.name),
            _styled(flow.status),
            escape(flow.stop_reason or ""),
            escape(flow.owner),
            str(len(flow.definition.get("nodes", {}))),
            str(flow.revision),
            flow.updated_at,
        )
    console.print(table)


@flows_app.command("show")
def flows_show(flow_id: str, workspace: WorkspaceOption, as_json: JsonOption = False) -> None:
    """One flow: its state and its graph."""
    flow = call_api(lambda client: client.runtime.flow(workspace, flow_id))
    if as_json:
        echo_json(flow)
        return
    console.print(f"[bold]{escape(flow.name)}[/] {flow.id} in {escape(flow.workspace)}")
    if flow.description:
        console.print(escape(flow.description))
    reason = f" ({escape(flow.stop_reason)})" if flow.stop_reason else ""
    console.print(f"status: {_styled(flow.status)}{reason}   revision {flow.revision}")
    console.print(f"owner: {escape(flow.owner)}")
    for label, at in (("started", flow.started_at), ("stopped", flow.stopped_at)):
        if at:
            console.print(f"{label}: {at}")
    definition = flow.definition
    nodes = Table("node", "component", "properties", title="nodes")
    for node_id, node in definition.get("nodes", {}).items():
        properties = node.get("properties") or {}
        nodes.add_row(
            escape(node_id),
            escape(node["component"]),
            escape(json.dumps(properties)) if properties else "",
        )
    console.print(nodes)
    connections = definition.get("connections", [])
    if connections:
        wires = Table("from", "to", title="connections")
        for connection in connections:
            wires.add_row(
                escape(f"{connection['from']}.{connection.get('from_port', 'out')}"),
                escape(f"{connection['to']}.{connection.get('to_port', 'in')}"),
            )
        console.print(wires)
    if definition.get("retry_policy"):
        console.print(f"retry policy: {escape(json.dumps(definition['retry_policy']))}")


@flows_app.command("create")
def flows_create(workspace: WorkspaceOption, file: FlowFile, as_json: JsonOption = False) -> None:
    """Create a flow (stopped) from a file; start it with ``flows start``."""
    body = _read_flow(file)

    flow = call_api(lambda client: client.runtime.create_flow(workspace, body))
    _show_flow(flow, "created", as_json)


@flows_app.command("update")
def flows_update(
    flow_id: str, workspace: WorkspaceOption, file: FlowFile, as_json: JsonOption = False
) -> None:
    """Replace a stopped flow's name, description, owner and definition with a file's."""
    body = _read_flow(file)

    flow = call_api(lambda client: client.runtime.replace_flow(workspace, flow_id, body))
    _show_flow(flow, "updated", as_json)


@flows_app.command("validate")
def flows_validate(flow_id: str, workspace: WorkspaceOption, as_json: JsonOption = False) -> None:
    """What would keep the flow from starting (exits 1 if anything would)."""
    result = call_api(lambda client: client.runtime.validate_flow(workspace, flow_id))
    if as_json:
        echo_json(result)
    elif result.valid:
        console.print(f"[green]✓[/] flow {flow_id} can start")
    else:
        for error in result.errors:
            err_console.print(f"[red]✗[/] {escape(error.pointer)}: {escape(error.detail)}")
    if not result.valid:
        raise typer.Exit(1)


@flows_app.command("start")
def flows_start(flow_id: str, workspace: WorkspaceOption, as_json: JsonOption = False) -> None:
    """Validate and start a flow; if it cannot start, every problem is shown."""
    flow = call_api(lambda client: client.runtime.start_flow(workspace, flow_id))
    _show_flow(flow, "started", as_json)


@flows_app.command("stop")
def flows_stop(flow_id: str, workspace: WorkspaceOption, as_json: JsonOption = False) -> None:
    flow = call_api(lambda client: client.runtime.stop_flow(workspace, flow_id))
    _show_flow(flow, "stopped", as_json)


@flows_app.command("delete")
def flows_delete(flow_id: str, workspace: WorkspaceOption) -> None:
    """Delete a stopped flow."""
    call_api(lambda client: client.runtime.delete_flow(workspace, flow_id))
    console.print(f"[yellow]deleted[/] flow {flow_id}")


# -- unprocessed messages -------------------------------------------------------------------------

DlqWorkspace = Annotated[
    str | None, typer.Option("--workspace", "-w", help="Only messages of this workspace.")
]
DlqFlow = Annotated[str | None, typer.Option("--flow", help="Only messages of this flow (its id).")]
DlqNode = Annotated[
    str | None, typer.Option("--node", help="Only messages that failed at this node.")
]
Since = Annotated[
    str | None, typer.Option(help="Stored at or after this time (ISO 8601).", callback=_iso)
]
Until = Annotated[
    str | None, typer.Option(help="Stored before this time (ISO 8601).", callback=_iso)
]
AllOption = Annotated[
    bool, typer.Option("--all", help="Every message matching the filters instead of one ID.")
]


def _one_or_all(message_id: str | None, every: bool, filters: dict[str, Any]) -> None:
    if message_id is not None and every:
        raise typer.BadParameter("give a message ID or --all, not both")
    if message_id is None and not every:
        raise typer.BadParameter("give a message ID, or --all with filters")
    if message_id is not None and any(value is not None for value in filters.values()):
        raise typer.BadParameter("the filters apply to --all only")


def _last_error(item: UnprocessedOut) -> str:
    errors = item.errors
    if not errors:
        return ""
    last = errors[-1]
    status = f"{last['status']} " if last.get("status") is not None else ""
    return status + str(last.get("message", ""))


@dlq_app.command("list")
def dlq_list(
    workspace: DlqWorkspace = None,
    flow: DlqFlow = None,
    node: DlqNode = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many messages.")] = 1000,
    page_size: Annotated[
        int, typer.Option(min=1, max=500, help="Messages fetched per request.")
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """Messages that failed for good, oldest first."""
    settings = CommonSettings()

    async def run() -> tuple[list[UnprocessedOut], bool]:
        async with api_client(settings) as client:
            items = client.runtime.unprocessed(
                workspace=workspace,
                flow=flow,
                node=node,
                since=since,
                until=until,
                page_size=min(page_size, limit + 1),
            )
            return await _take(items, limit)

    items, more = run_api(run())
    if as_json:
        echo_json(items)
        return
    table = _table(
        "id", "stored", "workspace", "flow", "node", "component", "reason", "tries", "last error"
    )
    for item in items:
        table.add_row(
            item.id,
            item.created_at,
            escape(item.workspace),
            item.flow_id[:8],
            escape(item.node_id),
            escape(item.component),
            escape(item.reason),
            str(item.attempts),
            escape(_last_error(item)),
        )
    console.print(table)
    if more:
        console.print(f"[yellow]more than {limit} match; raise --limit or narrow the filters[/]")


@dlq_app.command("show")
def dlq_show(message_id: str, as_json: JsonOption = False) -> None:
    """One unprocessed message: where it failed, every attempt's error, its payload."""
    item = call_api(lambda client: client.runtime.unprocessed_message(message_id))
    if as_json:
        echo_json(item)
        return
    console.print(f"[bold]{item.id}[/] stored {item.created_at}")
    console.print(
        f"workspace {escape(item.workspace)}, flow {item.flow_id}, "
        f"node {escape(item.node_id)} ({escape(item.component)}), port {escape(item.port)}"
    )
    console.print(f"reason: [red]{escape(item.reason)}[/] after {item.attempts} attempt(s)")
    errors = Table("attempt", "at", "status", "retryable", "message", title="errors")
    for error in item.errors:
        errors.add_row(
            str(error.get("attempt", "")),
            str(error.get("at", "")),
            "" if error.get("status") is None else str(error["status"]),
            "yes" if error.get("retryable") else "no",
            escape(str(error.get("message", ""))),
        )
    console.print(errors)
    console.print("payload:")
    console.print_json(json.dumps(item.payload))


@dlq_app.command("retry")
def dlq_retry(
    message_id: Annotated[str | None, typer.Argument(help="The message; or use --all.")] = None,
    payload: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="JSON or YAML file: the payload to retry with."
        ),
    ] = None,
    every: AllOption = False,
    workspace: DlqWorkspace = None,
    flow: DlqFlow = None,
    node: DlqNode = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, max=10_000, help="With --all: at most this many (1000 by default)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Put a message back into its flow at the node that failed (optionally with a new payload),
    or, with --all, every message matching the filters."""
    filters = {"workspace": workspace, "flow": flow, "node": node, "since": since, "until": until}
    _one_or_all(message_id, every, filters | {"limit": limit})
    if every and payload is not None:
        raise typer.BadParameter("--payload applies to one message, not --all")
    replacement = KEEP_PAYLOAD if payload is None else _read_document(payload)
    settings = CommonSettings()

    async def run() -> BulkResult:
        async with api_client(settings) as client:
            if message_id is not None:
                return await client.runtime.retry_unprocessed(message_id, replacement)
            return await client.runtime.retry_unprocessed_matching(**filters, limit=limit)

    result = run_api(run())
    if as_json:
        echo_json(result)
    else:
        console.print(f"[green]✓[/] retrying {result.count} message(s)")


@dlq_app.command("delete")
def dlq_delete(
    message_id: Annotated[str | None, typer.Argument(help="The message; or use --all.")] = None,
    every: AllOption = False,
    workspace: DlqWorkspace = None,
    flow: DlqFlow = None,
    node: DlqNode = None,
    since: Since = None,
    until: Until = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="With --all and no filter: really delete every message.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a message, or, with --all, every message matching the filters."""
    filters = {"workspace": workspace, "flow": flow, "node": node, "since": since, "until": until}
    _one_or_all(message_id, every, filters)
    if every and not yes and all(value is None for value in filters.values()):
        raise typer.BadParameter(
            "--all without a filter deletes every unprocessed message; add a filter or --yes"
        )
    settings = CommonSettings()

    async def run() -> BulkResult:
        async with api_client(settings) as client:
            if message_id is not None:
                await client.runtime.delete_unprocessed(message_id)
                return BulkResult(count=1, ids=[message_id])
            return await client.runtime.delete_unprocessed_matching(**filters)

    result = run_api(run())
    if as_json:
        echo_json(result)
    else:
        console.print(f"[yellow]deleted[/] {result.count} message(s)")


# -- system webhooks ------------------------------------------------------------------------------


@webhooks_app.command("list")
def webhooks_list(as_json: JsonOption = False) -> None:
    """Every system webhook (secrets are never shown)."""
    hooks = call_api(lambda client: client.runtime.webhooks())
    if as_json:
        echo_json(hooks)
        return
    table = _table("id", "url", "events", "active", "description", "created by", "created")
    for hook in hooks:
        table.add_row(
            hook.id,
            escape(hook.url),
            escape(", ".join(hook.events)),
            "yes" if hook.active else "[red]no[/]",
            escape(hook.description or ""),
            escape(hook.created_by),
            hook.created_at,
        )
    console.print(table)


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="Where deliveries are POSTed (http or https).")],
    secret: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            help="Key the deliveries are signed with (HMAC-SHA256, 16+ characters); asked for when left out.",
        ),
    ],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", "-e", help="An event to receive; repeat for several. [default: * (all)]"
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the webhook is for.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe a URL to system events."""

    hook = call_api(
        lambda client: client.runtime.add_webhook(
            url, events=event or ["*"], secret=secret, description=description
        )
    )
    if as_json:
        echo_json(hook)
    else:
        console.print(
            f"[green]✓[/] webhook {hook.id}: {escape(hook.url)} ({escape(', '.join(hook.events))})"
        )


@webhooks_app.command("remove")
def webhooks_remove(webhook_id: str) -> None:
    """Unsubscribe; the webhook's deliveries, pending ones included, go with it."""
    call_api(lambda client: client.runtime.remove_webhook(webhook_id))
    console.print(f"[yellow]removed[/] webhook {webhook_id}")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    webhook_id: str,
    status: Annotated[
        str | None,
        typer.Option(help="Only deliveries in this state: pending, delivered or failed."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """A webhook's deliveries, newest first, with their attempts and outcome."""
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise typer.BadParameter("must be pending, delivered or failed", param_hint="--status")
    settings = CommonSettings()

    async def run() -> tuple[list[DeliveryOut], bool]:
        async with api_client(settings) as client:
            items = client.runtime.deliveries(
                webhook_id, status=status, page_size=min(limit + 1, 200)
            )
            return await _take(items, limit)

    deliveries, more = run_api(run())
    if as_json:
        echo_json(deliveries)
        return
    table = _table("id", "event", "status", "tries", "last answer", "created", "delivered")
    for delivery in deliveries:
        answer = (
            str(delivery.last_status_code)
            if delivery.last_status_code is not None
            else delivery.last_error or ""
        )
        table.add_row(
            delivery.id,
            escape(delivery.event),
            _styled(delivery.status),
            str(delivery.attempts),
            escape(answer),
            delivery.created_at,
            delivery.delivered_at or "",
        )
    console.print(table)
    if more:
        console.print(f"[yellow]showing the newest {limit}; raise --limit for more[/]")


@webhooks_app.command("test")
def webhooks_test(webhook_id: str, as_json: JsonOption = False) -> None:
    """Send the webhook a ``webhook.test`` delivery; follow it with ``webhooks deliveries``."""
    delivery = call_api(lambda client: client.runtime.test_webhook(webhook_id))
    if as_json:
        echo_json(delivery)
    else:
        console.print(f"[green]✓[/] queued test delivery {delivery.id}")


@workers_app.command("credentials")
def workers_credentials(
    workspace: Annotated[str, typer.Argument(help="The installation's workspace.")],
    slug: Annotated[str, typer.Argument(help="The installation's slug.")],
    close_connections: Annotated[
        bool, typer.Option(help="Also disconnect workers logged in with the previous password.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Issue (and so rotate) the broker credentials of an installation's module worker.

    The password is shown once: save the JSON and run the worker with
    `modyard cell run pkg.module:worker --credentials FILE`."""
    found = call_api(
        lambda client: client.runtime.issue_worker_credentials(
            workspace, slug, close_connections=close_connections
        )
    )
    if as_json:
        echo_json(found)
        return
    for key in ("amqp_url", "vhost", "username", "queue", "reply_exchange", "closed_connections"):
        console.print(f"{key}: {escape(str(found.as_json()[key]))}")


@workers_app.command("revoke")
def workers_revoke(
    workspace: Annotated[str, typer.Argument(help="The installation's workspace.")],
    slug: Annotated[str, typer.Argument(help="The installation's slug.")],
) -> None:
    """Delete the worker's broker user and queue and disconnect it."""
    call_api(lambda client: client.runtime.revoke_worker_credentials(workspace, slug))
    console.print(
        f"The module worker of {escape(workspace)}:{escape(slug)} has no access any more."
    )
