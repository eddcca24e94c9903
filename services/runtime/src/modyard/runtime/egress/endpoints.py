"""``/v1/workspaces/{ws}/egress``: a workspace's egress allow-list (members read, operators
write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Forbidden
from modyard.runtime import changes
from modyard.runtime.context import Context
from modyard.runtime.egress import service
from modyard.runtime.egress.schemas import EgressAllowIn, EgressAllowOut

router = APIRouter(prefix="/v1/workspaces/{ws}", tags=["egress"], responses=PROBLEM_RESPONSES)
Workspace = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]


@router.get("/egress", response_model=EgressAllowOut)
async def get_egress(
    ws: Workspace, session: DbSession, principal: CurrentPrincipal
) -> EgressAllowOut:
    """What this workspace's flows and automations may reach beyond the deployment's egress
    policy (empty lists: nothing more)."""
    if not principal.can_access_workspace(ws):
        raise Forbidden(f"Your token does not name workspace {ws!r}.")
    return service.describe(ws, await service.get_allow_list(session, ws))


@router.put("/egress", response_model=EgressAllowOut)
async def put_egress(
    ws: Workspace, body: EgressAllowIn, session: DbSession, principal: Operator, context: Context
) -> EgressAllowOut:
    """Replace the workspace's allow-list (operators only). The platform's own endpoints and
    loopback stay refused whatever it says; every replica uses it once it is committed."""
    row = await service.put_allow_list(session, ws, body, updated_by=principal.subject)
    out = service.describe(ws, row)
    await changes.egress_changed(session, ws, context.news)
    return out
