"""The appcell-gateway's events: a cell ready to serve, rejected, or removed."""

from __future__ import annotations

from typing import Final

from modyard.contracts.events import EventData

CELL_READY: Final = "modyard.appcell-gateway.cell.ready"
CELL_REJECTED: Final = "modyard.appcell-gateway.cell.rejected"
CELL_REMOVED: Final = "modyard.appcell-gateway.cell.removed"


class CellEvent(EventData):
    installation_id: str
    workspace: str
    slug: str
    module: str
    version: str
    status: str
    #: Why it was rejected (:data:`CELL_REJECTED` only).
    error: str | None = None
