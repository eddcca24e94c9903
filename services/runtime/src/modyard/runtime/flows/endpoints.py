from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from modyard.common.auth import CurrentPrincipal, Principal
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Forbidden
from modyard.runtime.context import Context
from modyard.runtime.flows import js_lifecycle, service
from modyard.runtime.flows.definition import FlowIn
from modyard.runtime.models import Flow
from modyard.runtime.schemas import FlowOut, FlowPage, FlowValidation

router = APIRouter(prefix="/v1/workspaces/{ws}/flows", tags=["flows"], responses=PROBLEM_RESPONSES)
Workspace = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def _check_workspace(principal: Principal, workspace: str) -> None:
    if not principal.can_access_workspace(workspace):
        raise Forbidden(f"Your token does not name workspace {workspace!r}.")


def _out(flow: Flow) -> FlowOut:
    return FlowOut.model_validate(flow, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=FlowOut)
async def create_flow(
    ws: Workspace, body: FlowIn, session: DbSession, principal: CurrentPrincipal
) -> FlowOut:
    """Create a flow (stopped), owned by the caller; an operator may name another ``owner``."""
    _check_workspace(principal, ws)
    return _out(await service.create_flow(session, ws, body, principal))


@router.get("", response_model=FlowPage)
async def list_flows(
    ws: Workspace,
    session: DbSession,
    principal: CurrentPrincipal,
    status_filter: Annotated[
        str | None, Query(alias="status", pattern="^(running|stopped)$")
    ] = None,
) -> FlowPage:
    _check_workspace(principal, ws)
    return FlowPage(
        items=[_out(flow) for flow in await service.list_flows(session, ws, status_filter)]
    )


@router.get("/{flow_id}", response_model=FlowOut)
async def get_flow(
    ws: Workspace, flow_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> FlowOut:
    _check_workspace(principal, ws)
    return _out(await service.get_flow(session, ws, flow_id))


@router.put("/{flow_id}", response_model=FlowOut)
async def replace_flow(
    ws: Workspace,
    flow_id: uuid.UUID,
    body: FlowIn,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> FlowOut:
    """Replace a stopped flow's name, description and definition; a user who changes it owns
    it from then on (only operators may name another ``owner``)."""
    _check_workspace(principal, ws)
    return _out(
        await service.replace_flow(
            session, await service.get_flow(session, ws, flow_id), body, principal, context.news
        )
    )


@router.delete("/{flow_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_flow(
    ws: Workspace,
    flow_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> Response:
    _check_workspace(principal, ws)
    await service.delete_flow(session, await service.get_flow(session, ws, flow_id), context.news)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{flow_id}/validation", response_model=FlowValidation)
async def validate_flow(
    ws: Workspace,
    flow_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> FlowValidation:
    """What would keep the flow from starting, without starting it."""
    _check_workspace(principal, ws)
    errors = await service.validate(
        session, context.installer, await service.get_flow(session, ws, flow_id), principal
    )
    return FlowValidation(valid=not errors, errors=errors)


@router.post("/{flow_id}/start", response_model=FlowOut)
async def start_flow(
    ws: Workspace,
    flow_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> FlowOut:
    """Validate the graph, the properties and the owner's ACL (every error at once), then run."""
    _check_workspace(principal, ws)
    flow = await service.get_flow(session, ws, flow_id)
    was_running = flow.status == service.RUNNING
    flow = await service.start_flow(session, context.installer, flow, principal, context.news)
    if not was_running:
        # js components' start() (webhook registration); a failure refuses the start (422) and
        # the transaction, the flow's status included, is rolled back.
        await js_lifecycle.start_components(session, context, flow)
    return _out(flow)


@router.post("/{flow_id}/stop", response_model=FlowOut)
async def stop_flow(
    ws: Workspace,
    flow_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> FlowOut:
    _check_workspace(principal, ws)
    flow = await service.get_flow(session, ws, flow_id)
    was_running = flow.status == service.RUNNING
    flow = await service.stop_flow(session, flow, news=context.news)
    if was_running:
        await js_lifecycle.stop_components(session, context, flow)
    return _out(flow)
