"""Cells for the fault tests, run as processes by ``modyard cell run fault_cells:<name>`` (see
fault_cluster.cell_process). They answer the example cell's ``Domain.fetch`` (the plugin's
``fetch``) by echoing the domain asked for, so every caller can tell its own answer.

- ``echo``: answers at once; a domain starting with ``slow`` is answered after ``SLOW_SECONDS``
  (longer than the gateway's timeout in the tests).
- a domain starting with ``crash`` is taken, ``<pid>:<request id>`` written to
  ``MODYARD_FAULT_MARKER``, and then the handler hangs: the test kills the process while it handles the request. A process
  that finds the marker already written answers at once (the restarted cell).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from modyard.sdk.cell import Cell, Request

SLOW_SECONDS = 6.0

echo = Cell("fault-echo")


@echo.action("Domain", "fetch")
async def fetch(payload: dict[str, Any], settings: dict[str, Any], request: Request) -> Any:
    domain = str(payload["domain"])
    if domain.startswith("slow"):
        await asyncio.sleep(SLOW_SECONDS)
    if domain.startswith("crash"):
        marker = Path(os.environ["MODYARD_FAULT_MARKER"])
        if not marker.exists():  # noqa: ASYNC240 - a test cell, a tiny file
            marker.write_text(f"{os.getpid()}:{request.request_id}")  # noqa: ASYNC240
            await asyncio.sleep(3600)  # killed here
    return {"domain": domain, "status": "active"}
