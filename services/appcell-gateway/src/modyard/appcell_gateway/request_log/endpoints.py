"""``/v1/requests``: the recent requests through the pipeline, with latency and outcome."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from modyard.appcell_gateway.dependencies import Context, ServiceOrOperator
from modyard.appcell_gateway.schemas import RequestEntry, RequestPage
from modyard.common.errors import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/requests", tags=["requests"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=RequestPage)
async def recent_requests(
    context: Context,
    _: ServiceOrOperator,
    cell: Annotated[
        str | None,
        Query(max_length=255, description="Installation id or '<workspace>:<slug>'"),
    ] = None,
    status: Annotated[
        str | None,
        Query(
            max_length=64,
            description="'success', 'error' (every failure), or a problem slug such as 'cell-timeout'",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RequestPage:
    installation_id: uuid.UUID | None = None
    if cell is not None:
        try:
            installation_id = uuid.UUID(cell)
        except ValueError:
            installation_id = None
    rows = await context.requests.recent(
        installation_id=installation_id,
        cell=None if installation_id else cell,
        status=status,
        limit=limit,
    )
    return RequestPage(items=[RequestEntry.model_validate(row) for row in rows])
