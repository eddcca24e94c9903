"""Flows: the workspace's flows with their status and stop reason; start and stop."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.rendering import render

router = APIRouter(prefix="/flows", tags=["flows"])


@router.get("")
async def list_flows(
    request: Request,
    console: ConsoleDep,
    status: Annotated[Literal["running", "stopped"] | None, Query()] = None,
) -> Response:
    flows = await console.client.runtime.flows(console.workspace, status=status)
    return render(
        request, "flows.html", {"console": console, "flows": flows, "status": status or ""}
    )


@router.post("/{flow_id}/{action}")
async def start_or_stop(
    flow_id: uuid.UUID, action: Literal["start", "stop"], console: ConsoleDep
) -> Response:
    runtime = console.client.runtime
    if action == "start":
        flow = await runtime.start_flow(console.workspace, str(flow_id))
    else:
        flow = await runtime.stop_flow(console.workspace, str(flow_id))
    notice = f"{flow.name} is {flow.status}."
    return RedirectResponse(f"/flows?notice={quote(notice)}", status_code=303)
