"""The cell SDK: cells answering the AppCell gateway, module workers answering the runtime.

See docs/gateway.md (SDK guide) and examples/resellerclub_cell for a complete cell.
"""

from modyard.sdk.cell.cell import Cell, Request
from modyard.sdk.cell.errors import (
    CellError,
    Conflict,
    InvalidRequest,
    NotFound,
    Unauthorized,
    VendorUnavailable,
)
from modyard.sdk.cell.module import ComponentCall, ModuleWorker
from modyard.sdk.cell.runner import load_target, serve
from modyard.sdk.cell.worker import Worker, WorkerOptions

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
