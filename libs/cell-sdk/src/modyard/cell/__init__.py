"""The cell SDK (``modyard-cell-sdk``): cells answering the AppCell gateway, module workers
answering the runtime. A cell author installs it alone; ``python -m modyard.cell`` runs one.

See docs/gateway.md (SDK guide) and examples/resellerclub_cell for a complete cell.
"""

from modyard.cell.cell import Cell, Request
from modyard.cell.errors import (
    CellError,
    Conflict,
    InvalidRequest,
    NotFound,
    Unauthorized,
    VendorUnavailable,
)
from modyard.cell.module import ComponentCall, ModuleWorker
from modyard.cell.runner import load_target, serve
from modyard.cell.worker import Worker, WorkerOptions

__all__ = [
    "Cell",
    "CellError",
    "ComponentCall",
    "Conflict",
    "InvalidRequest",
    "ModuleWorker",
    "NotFound",
    "Request",
    "Unauthorized",
    "VendorUnavailable",
    "Worker",
    "WorkerOptions",
    "load_target",
    "serve",
]
