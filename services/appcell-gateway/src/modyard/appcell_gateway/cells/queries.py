"""Reading the catalogue: cells, their credentials, the UI controller's routes and slots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.appcell_gateway.broker_admin import REPLIES_EXCHANGE, BrokerAdmin
from modyard.appcell_gateway.cells.store import READY, REMOVED, find_row
from modyard.appcell_gateway.models import Cell
from modyard.appcell_gateway.problems import ActionNotFound, CellNotFound, CellNotReady
from modyard.appcell_gateway.schemas import (
    CellCredentials,
    CellDetail,
    CellSummary,
    SlotBundle,
    SlotBundles,
)
from modyard.appcell_gateway.security import enforce_workspace
from modyard.appcell_gateway.validation import ARCHIVE_BASE, SchemaFiles
from modyard.common.auth import Principal
from modyard.common.errors import Conflict
from modyard.common.secrets import SecretBox


def _visible(cell: Cell, principal: Principal) -> bool:
    return principal.can_access_workspace(cell.workspace)


def summary(cell: Cell) -> CellSummary:
    return CellSummary(
        installation_id=cell.installation_id,
        workspace=cell.workspace,
        slug=cell.slug,
        module=cell.module,
        version=cell.version,
        status=cell.status,
        error=cell.error,
        revision=cell.revision,
        queue=cell.queue,
        plugins=sorted((cell.catalogue.get("plugins") or {}).keys()),
        created_at=cell.created_at,
        updated_at=cell.updated_at,
    )


async def list_cells(
    session: AsyncSession, principal: Principal, *, workspace: str | None, status: str | None
) -> list[CellSummary]:
    query = select(Cell).order_by(Cell.workspace, Cell.slug)
    if workspace is not None:
        query = query.where(Cell.workspace == workspace)
    query = query.where(Cell.status == status) if status else query.where(Cell.status != REMOVED)
    return [summary(cell) for cell in await session.scalars(query) if _visible(cell, principal)]


async def visible_cell(session: AsyncSession, principal: Principal, key: str) -> Cell:
    cell = await find_row(session, key)
    if not _visible(cell, principal):
        raise CellNotFound(f"There is no installed cell {key!r}; see GET /v1/cells.")
    return cell


def _schema_view(files: SchemaFiles, spec: dict[str, Any] | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    if "inline" in spec:
        return {"inline": True, "schema": spec["inline"]}
    return {
        "reference": spec.get("reference"),
        "path": spec["path"],
        "schema": files.document(ARCHIVE_BASE + str(spec["path"])),
    }


def detail(cell: Cell) -> CellDetail:
    catalogue = cell.catalogue
    files = SchemaFiles(catalogue.get("files") or {}, cell_name=catalogue.get("label"))
    plugin_actions = {
        plugin: {
            "implements": entry.get("implements", []),
            "actions": {
                key: [
                    {
                        **execution,
                        "payload": _schema_view(files, execution.get("payload")),
                        "result": _schema_view(files, execution.get("result")),
                    }
                    for execution in executions
                ]
                for key, executions in entry.get("actions", {}).items()
            },
        }
        for plugin, entry in (catalogue.get("plugins") or {}).items()
    }
    resources = {
        name: {
            **resource,
            "payload": _schema_view(files, resource.get("payload")),
            "result": _schema_view(files, resource.get("result")),
        }
        for name, resource in (catalogue.get("resources") or {}).items()
    }
    return CellDetail(
        **summary(cell).model_dump(),
        label=catalogue.get("label"),
        plugin_actions=plugin_actions,
        resources=resources,
        settings=catalogue.get("settings") or {},
        ui=catalogue.get("ui") or {},
    )


def credentials(cell: Cell, broker: BrokerAdmin, secrets: SecretBox) -> CellCredentials:
    if cell.status != READY or not cell.amqp_username or not cell.amqp_password:
        raise CellNotReady(
            f"Cell {cell.workspace}:{cell.slug} has no broker credentials: "
            f"{cell.error or cell.status}.",
            cell_status=cell.status,
        )
    password = secrets.decrypt(cell.amqp_password).decode()
    return CellCredentials(
        installation_id=cell.installation_id,
        amqp_url=broker.amqp_url_for(cell.amqp_username, password),
        vhost=broker.vhost,
        username=cell.amqp_username,
        queue=cell.queue,
        reply_exchange=REPLIES_EXCHANGE,
    )


# -- UI: the Controller and the slots ----------------------------------------------------------


async def _ready_cells(
    session: AsyncSession, principal: Principal, workspace: str | None
) -> list[Cell]:
    """Ready cells of the caller's workspaces (of every workspace for operators and services)."""
    query = select(Cell).where(Cell.status == READY).order_by(Cell.created_at)
    if workspace is not None:
        query = query.where(Cell.workspace == workspace)
    return [cell for cell in await session.scalars(query) if _visible(cell, principal)]


async def controller_target(
    session: AsyncSession,
    principal: Principal,
    url_base: str,
    action: str,
    installation: str | None,
) -> tuple[str, str]:
    """The (cell key, plugin) whose backend module has ``urlBase`` and offers ``action``.

    Like calls to actions, the Controller serves a caller only its own workspaces' cells (403
    for another workspace's installation named with ``installation``), then the pipeline
    applies the action's AppCell security.
    """
    if installation:
        named = await find_row(session, installation)
        enforce_workspace(principal, named.workspace, installation)
        cells = [named]
    else:
        cells = await _ready_cells(session, principal, None)
    matching = [
        cell
        for cell in cells
        if any(
            module.get("urlBase") == url_base
            for module in (cell.catalogue.get("ui") or {}).get("backendModules", [])
        )
    ]
    if not matching:
        raise CellNotFound(f"No installed cell has a UI controller at urlBase {url_base!r}.")
    if len(matching) > 1:
        raise Conflict(
            f"Several installations serve urlBase {url_base!r}; add ?installation=<id> to choose.",
            slug="ambiguous-controller",
            installations=[str(cell.installation_id) for cell in matching],
        )
    cell = matching[0]
    for plugin, entry in (cell.catalogue.get("plugins") or {}).items():
        if action in entry.get("actions", {}):
            return str(cell.installation_id), plugin
    raise ActionNotFound(
        f"The controller {url_base!r} has no action {action!r}; the cell's plugins offer "
        + ", ".join(
            sorted(
                key
                for entry in (cell.catalogue.get("plugins") or {}).values()
                for key in entry.get("actions", {})
            )
        )
        + "."
    )


async def slot_bundles(
    session: AsyncSession,
    principal: Principal,
    slot: str,
    product: str | None,
    workspace: str | None,
) -> SlotBundles:
    """Frontend bundles for ``slot``: dependencies first (each once), then the modules.

    With ``product``, a module is kept when its ``slotFilters`` name that product (the plugin's
    name in plugin.json) or when it has no filters; without it, every module of the slot is.
    Only the caller's workspaces' cells are listed (``workspace`` narrows them further).
    """
    dependencies: list[SlotBundle] = []
    modules: list[SlotBundle] = []
    seen: set[str] = set()
    for cell in await _ready_cells(session, principal, workspace):
        for module in (cell.catalogue.get("ui") or {}).get("frontendModules", []):
            filters = [str(name) for name in module.get("slotFilters") or []]
            if slot not in (module.get("slots") or []):
                continue
            if product is not None and filters and product not in filters:
                continue
            for dependency in module.get("deps") or []:
                if dependency not in seen:
                    seen.add(dependency)
                    dependencies.append(SlotBundle(kind="dependency", name=str(dependency)))
            modules.append(
                SlotBundle(
                    kind="module",
                    url=module.get("url"),
                    path=module.get("path"),
                    digest=module.get("digest"),
                    installation_id=cell.installation_id,
                    slot_filters=filters,
                )
            )
    return SlotBundles(slot=slot, product=product, bundles=[*dependencies, *modules])
