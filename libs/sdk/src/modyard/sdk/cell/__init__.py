"""The cell SDK as the full SDK offers it: :mod:`modyard.cell` (distribution
``modyard-cell-sdk``, which a cell author may install alone), with ``serve`` continuing the
caller's OpenTelemetry traces (:mod:`modyard.sdk.cell.runner`). ``modyard cell run`` uses it.

See docs/gateway.md (SDK guide) and examples/resellerclub_cell for a complete cell.
"""

from modyard.cell import (
    Cell,
    CellError,
    ComponentCall,
    Conflict,
    InvalidRequest,
    ModuleWorker,
    NotFound,
    Request,
    Unauthorized,
    VendorUnavailable,
    Worker,
    WorkerOptions,
    load_target,
)
from modyard.sdk.cell.runner import serve

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
