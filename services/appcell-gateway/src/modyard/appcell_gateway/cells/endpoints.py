"""``/v1/cells``: the catalogue, credentials, and calling actions over HTTP."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, Field

from modyard.appcell_gateway.cells import queries
from modyard.appcell_gateway.context import GatewayContext
from modyard.appcell_gateway.dependencies import Caller, Context, Operator, json_response
from modyard.appcell_gateway.pipeline import CellRequest
from modyard.appcell_gateway.schemas import (
    ActionAnswer,
    ActionCall,
    CellCredentials,
    CellDetail,
    CellSummary,
)
from modyard.common.auth import CurrentPrincipal, Principal
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.common.request_context import current_correlation_id, current_request_id

router = APIRouter(prefix="/v1/cells", tags=["cells"], responses=PROBLEM_RESPONSES)

CellKey = Annotated[
    str, Path(max_length=255, description="Installation id, or '<workspace>:<slug>'")
]
Name = Annotated[str, Path(min_length=1, max_length=255)]


@router.get("", response_model=list[CellSummary])
async def list_cells(
    session: DbSession,
    principal: CurrentPrincipal,
    workspace: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(pattern="^(ready|invalid|removed)$")] = None,
) -> list[CellSummary]:
    """Installed cells (removed ones only with ``?status=removed``)."""
    return await queries.list_cells(session, principal, workspace=workspace, status=status)


@router.get("/{installation}", response_model=CellDetail)
async def get_cell(
    installation: CellKey, session: DbSession, principal: CurrentPrincipal
) -> CellDetail:
    """A cell with its plugins, actions (security, schemas, postpayloads), resources, settings
    and UI modules."""
    return queries.detail(await queries.visible_cell(session, principal, installation))


@router.get("/{installation}/credentials", response_model=CellCredentials)
async def get_credentials(
    installation: CellKey, session: DbSession, context: Context, principal: Operator
) -> CellCredentials:
    """The broker URL, vhost and queue the cell's worker connects with (operators only)."""
    cell = await queries.visible_cell(session, principal, installation)
    return queries.credentials(cell, context.broker, context.secrets)


class ActionPath(BaseModel):
    """The action route's path parameters, with the limits of ``CellKey`` and ``Name``."""

    installation: Annotated[str, Field(max_length=255)]
    plugin: Annotated[str, Field(min_length=1, max_length=255)]
    action: Annotated[str, Field(min_length=1, max_length=255)]


#: The caller's id for the request: sent again with the same key (a retry after a timeout), the
#: request reaches the cell with the same request ids and is answered from the cell's replay
#: memory instead of running the action twice.
IdempotencyKey = Annotated[str, Field(max_length=255)]


async def run_action_call(
    context: GatewayContext,
    principal: Principal,
    path: ActionPath,
    call: ActionCall,
    idempotency_key: str | None,
) -> dict[str, Any]:
    """One action call through the pipeline: what the lane and the documented route both run."""
    return await context.pipeline.handle(
        CellRequest(
            cell=path.installation,
            plugin=path.plugin,
            action=path.action,
            payload=call.payload,
            data=call.data,
            customer_product_id=call.customer_product_id,
            principal=principal,
            ingress="http",
            correlation_id=current_correlation_id() or current_request_id() or "",
            idempotency_key=idempotency_key,
        )
    )


@router.post(
    "/{installation}/plugins/{plugin}/actions/{action}",
    response_model=ActionAnswer,
    response_model_exclude_none=False,
)
async def call_action(
    installation: CellKey,
    plugin: Name,
    action: Name,
    body: ActionCall,
    context: Context,
    principal: Caller,
    idempotency_key: Annotated[
        IdempotencyKey | None,
        Header(
            alias="Idempotency-Key",
            description="Your id for this request: a retry with the same key does not run "
            "the action twice (within the cell's replay window)",
        ),
    ] = None,
) -> Response:
    """Run one plugin action through the pipeline (security, payload and result validation,
    postpayload).

    The app serves this operation with ``ActionCallLane`` (``action_lane.py``) before routing;
    this declaration documents it and answers whenever the lane is not installed."""
    path = ActionPath(installation=installation, plugin=plugin, action=action)
    answer = await run_action_call(context, principal, path, body, idempotency_key)
    return json_response(answer)
