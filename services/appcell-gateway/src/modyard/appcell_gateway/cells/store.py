"""Installed cells: kept in step with the installer's events, compiled once per process.

The handler of an ``installation.created|upgraded`` event for a cell reads the module's manifest
and archive from the registry, builds its catalogue (:mod:`catalogue`), gives it a broker user and a
request queue (:mod:`broker_admin`) and stores it with a new ``revision``. Every gateway process
compiles a cell's schemas the first time it serves it and again only when the stored revision moves
(checked at most every ``catalogue_refresh_seconds``), so requests never compile anything.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.appcell_gateway.broker_admin import BrokerAdmin, cell_queue, cell_user, new_password
from modyard.appcell_gateway.cells.catalogue import CellInvalid, build_catalogue
from modyard.appcell_gateway.models import Cell
from modyard.appcell_gateway.problems import CellNotFound, CellNotReady
from modyard.appcell_gateway.upstream import RegistryClient, UpstreamMissing
from modyard.appcell_gateway.validation import CompiledSchema, SchemaFiles
from modyard.common.bus.envelope import new_event
from modyard.common.bus.outbox import record_event
from modyard.common.db.database import Database
from modyard.common.secrets import SecretBox
from modyard.contracts.events import payload
from modyard.contracts.events.gateway import CELL_READY, CELL_REJECTED, CELL_REMOVED, CellEvent
from modyard.contracts.events.installer import InstallationEvent
from modyard.modules.manifest import Manifest

log = structlog.get_logger(__name__)

READY, INVALID, REMOVED = "ready", "invalid", "removed"


# -- following the installer ----------------------------------------------------------------------


@dataclass
class CellDeps:
    registry: RegistryClient
    broker: BrokerAdmin
    secrets: SecretBox
    source: str


async def install(session: AsyncSession, deps: CellDeps, data: InstallationEvent) -> Cell:
    """Create or refresh the cell of an installation (idempotent: events may be redelivered)."""
    installation_id = uuid.UUID(data.installation_id)
    cell = await session.get(Cell, installation_id, with_for_update=True)
    if cell is None:
        cell = Cell(installation_id=installation_id, revision=0, catalogue={})
        session.add(cell)
    cell.workspace, cell.slug = data.workspace, data.slug
    cell.module, cell.version = data.module, data.version
    cell.queue = cell_queue(installation_id)
    cell.revision += 1
    try:
        manifest = Manifest.model_validate(await deps.registry.manifest(cell.module, cell.version))
        archive = await deps.registry.archive(cell.module, cell.version)
        # Reading the archive and compiling its schemas is CPU work: off the event loop.
        cell.catalogue = await asyncio.to_thread(build_catalogue, manifest, archive)
    except (CellInvalid, UpstreamMissing) as exc:
        cell.status, cell.error = INVALID, str(exc)
        await session.flush()
        log.warning("cell_rejected", installation_id=str(installation_id), error=cell.error)
        await _emit(session, deps, CELL_REJECTED, cell, error=cell.error)
        return cell
    password = (
        deps.secrets.decrypt(cell.amqp_password).decode() if cell.amqp_password else new_password()
    )
    await deps.broker.ensure_cell(installation_id, password)
    cell.amqp_username = cell_user(installation_id)
    cell.amqp_password = deps.secrets.encrypt(password.encode())
    cell.status, cell.error = READY, None
    await session.flush()
    log.info("cell_ready", installation_id=str(installation_id), module=cell.module)
    await _emit(session, deps, CELL_READY, cell)
    return cell


async def remove(session: AsyncSession, deps: CellDeps, data: InstallationEvent) -> None:
    installation_id = uuid.UUID(data.installation_id)
    await deps.broker.remove_cell(installation_id)
    cell = await session.get(Cell, installation_id, with_for_update=True)
    if cell is None:
        return
    cell.status, cell.error = REMOVED, None
    cell.amqp_username = cell.amqp_password = None
    cell.revision += 1
    await session.flush()
    await _emit(session, deps, CELL_REMOVED, cell)


async def _emit(
    session: AsyncSession, deps: CellDeps, kind: str, cell: Cell, error: str | None = None
) -> None:
    data = CellEvent(
        installation_id=str(cell.installation_id),
        workspace=cell.workspace,
        slug=cell.slug,
        module=cell.module,
        version=cell.version,
        status=cell.status,
    )
    if error is not None:
        data = data.model_copy(update={"error": error})
    await record_event(
        session,
        new_event(
            source=deps.source,
            type=kind,
            subject=f"{cell.workspace}/{cell.slug}",
            data=payload(data),
        ),
    )


# -- finding cells --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def parse_key(key: str) -> uuid.UUID | tuple[str, str]:
    """A cell is named by its installation id or by ``<workspace>:<slug>``.

    Remembered: every action call names its cell, usually by ``<workspace>:<slug>``, which
    ``uuid.UUID`` refuses with an exception first (about 1 µs a request)."""
    try:
        return uuid.UUID(key)
    except ValueError:
        workspace, separator, slug = key.partition(":")
        if not separator or not workspace or not slug:
            raise CellNotFound(
                f"{key!r} names no cell; use the installation id or '<workspace>:<slug>'."
            ) from None
        return workspace, slug


async def find_row(session: AsyncSession, key: str) -> Cell:
    parsed = parse_key(key)
    if isinstance(parsed, uuid.UUID):
        cell = await session.get(Cell, parsed)
    else:
        cell = await session.scalar(
            select(Cell)
            .where(Cell.workspace == parsed[0], Cell.slug == parsed[1], Cell.status != REMOVED)
            .order_by(Cell.updated_at.desc())
            .limit(1)
        )
    if cell is None or cell.status == REMOVED:
        raise CellNotFound(f"There is no installed cell {key!r}; see GET /v1/cells.")
    return cell


async def find_stamp(session: AsyncSession, key: str) -> tuple[uuid.UUID, int, str] | None:
    """What :func:`find_row` would find, as ``(installation id, revision, status)`` only: the
    periodic check of a compiled cell, without reading and decoding its catalogue's JSON (its
    schema files), which is the bulk of a row."""
    parsed = parse_key(key)
    query = select(Cell.installation_id, Cell.revision, Cell.status)
    if isinstance(parsed, uuid.UUID):
        query = query.where(Cell.installation_id == parsed)
    else:
        query = (
            query.where(Cell.workspace == parsed[0], Cell.slug == parsed[1], Cell.status != REMOVED)
            .order_by(Cell.updated_at.desc())
            .limit(1)
        )
    row = (await session.execute(query)).first()
    return (row[0], row[1], row[2]) if row is not None else None


# -- compiled cells -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    resource: str
    action: str
    security: str
    payload: CompiledSchema | None
    result: CompiledSchema | None
    postpayload: Any
    #: AppCell's payload template (docs/formats/appcell.md), compiled from the request's data.
    payload_template: dict[str, Any] | None = None


@dataclass
class LiveCell:
    installation_id: uuid.UUID
    workspace: str
    slug: str
    module: str
    version: str
    revision: int
    queue: str
    user: str | None
    #: plugin → action key → executions
    plugins: dict[str, dict[str, list[Execution]]]
    checked_at: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return f"{self.workspace}:{self.slug}"


def compile_cell(row: Cell) -> LiveCell:
    catalogue = row.catalogue
    files = SchemaFiles(catalogue.get("files") or {}, cell_name=catalogue.get("label"))

    def compiled(spec: dict[str, Any] | None) -> CompiledSchema | None:
        return files.compile(spec) if spec else None

    plugins = {
        plugin: {
            key: [
                Execution(
                    resource=str(execution["resource"]),
                    action=str(execution["action"]),
                    security=str(execution.get("security") or "protected"),
                    payload=compiled(execution.get("payload")),
                    result=compiled(execution.get("result")),
                    postpayload=execution.get("postpayload"),
                    payload_template=execution.get("payload_template"),
                )
                for execution in executions
            ]
            for key, executions in entry["actions"].items()
        }
        for plugin, entry in (catalogue.get("plugins") or {}).items()
    }
    return LiveCell(
        installation_id=row.installation_id,
        workspace=row.workspace,
        slug=row.slug,
        module=row.module,
        version=row.version,
        revision=row.revision,
        queue=row.queue,
        user=row.amqp_username,
        plugins=plugins,
    )


class CellCache:
    """Compiled cells of this process, re-checked against the stored revision now and then."""

    def __init__(self, database: Database, *, refresh_seconds: float) -> None:
        self._database = database
        self._refresh = refresh_seconds
        self._cells: dict[uuid.UUID, LiveCell] = {}
        #: ``(workspace, slug)`` → installation id; a reinstalled slug is found again when the
        #: old cell's copy goes stale and is reloaded by its key.
        self._aliases: dict[tuple[str, str], uuid.UUID] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    def invalidate(self, installation_id: uuid.UUID) -> None:
        self._cells.pop(installation_id, None)
        for alias, target in list(self._aliases.items()):
            if target == installation_id:
                self._aliases.pop(alias, None)

    def _known(self, parsed: uuid.UUID | tuple[str, str]) -> LiveCell | None:
        installation_id = parsed if isinstance(parsed, uuid.UUID) else self._aliases.get(parsed)
        return self._cells.get(installation_id) if installation_id else None

    async def get(self, key: str) -> LiveCell:
        parsed = parse_key(key)
        live = self._known(parsed)
        if live is not None:
            if time.monotonic() - live.checked_at >= self._refresh:
                # Stale: answer with it and check the stored revision in the background, so no
                # request waits for the database (a removal shows within one refresh).
                self._refresh_soon(key, live)
            return live
        # Not compiled here yet: one load per cell at a time; the requests queued behind it
        # use its result.
        async with self._locks.setdefault(key, asyncio.Lock()):
            live = self._known(parsed)
            if live is not None:
                return live
            return await self._load(key)

    def _refresh_soon(self, key: str, live: LiveCell) -> None:
        if key in self._refreshing:
            return
        live.checked_at = time.monotonic()  # one check per period, whatever the traffic

        async def refresh() -> None:
            try:
                async with self._database.transaction() as session:
                    stamp = await find_stamp(session, key)
                if stamp == (live.installation_id, live.revision, READY):
                    live.checked_at = time.monotonic()
                    return
                await self._load(key)  # changed, gone or broken: the whole row says how
            except (CellNotFound, CellNotReady):
                self.invalidate(live.installation_id)  # removed or broken since compiled here
            except Exception as exc:  # the database may be down: keep serving what we have
                log.warning("cell_refresh_failed", cell=key, error=str(exc)[:300])
            finally:
                self._refreshing.pop(key, None)

        self._refreshing[key] = asyncio.create_task(refresh(), name=f"cell-refresh-{key}")

    async def _load(self, key: str) -> LiveCell:
        async with self._database.transaction() as session:
            row = await find_row(session, key)
            if row.status != READY:
                raise CellNotReady(
                    f"Cell {key!r} cannot take requests: {row.error or row.status}.",
                    cell_status=row.status,
                )
            current = self._cells.get(row.installation_id)
            if current is not None and current.revision == row.revision:
                current.checked_at = time.monotonic()
                fresh = current
            else:
                fresh = compile_cell(row)
        self._cells[fresh.installation_id] = fresh
        self._aliases[(fresh.workspace, fresh.slug)] = fresh.installation_id
        return fresh
