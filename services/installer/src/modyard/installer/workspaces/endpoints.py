from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.installer import publishers
from modyard.installer.schemas import (
    WORKSPACE_PATTERN,
    MemberUpdate,
    WorkspaceCreate,
    WorkspaceOut,
    WorkspacePage,
)
from modyard.installer.workspaces import service as workspaces

router = APIRouter(prefix="/v1/workspaces", tags=["workspaces"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
WorkspaceSlug = Annotated[str, Path(pattern=WORKSPACE_PATTERN)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkspaceOut)
async def create_workspace(body: WorkspaceCreate, session: DbSession, _: Operator) -> WorkspaceOut:
    """Create a workspace (tenant), optionally with members."""
    return await workspaces.describe(session, await workspaces.create_workspace(session, body))


@router.get("", response_model=WorkspacePage)
async def list_workspaces(session: DbSession, principal: CurrentPrincipal) -> WorkspacePage:
    """Workspaces the caller may act in (all of them for operators)."""
    found = await workspaces.list_workspaces(session, principal)
    return WorkspacePage(items=[await workspaces.describe(session, w) for w in found])


@router.get("/{ws}", response_model=WorkspaceOut)
async def get_workspace(
    ws: WorkspaceSlug, session: DbSession, principal: CurrentPrincipal
) -> WorkspaceOut:
    return await workspaces.describe(
        session, await workspaces.get_workspace(session, ws, principal)
    )


@router.delete("/{ws}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_workspace(ws: WorkspaceSlug, session: DbSession, principal: Operator) -> Response:
    """Delete an empty workspace (409 while it has installations)."""
    await workspaces.delete_workspace(
        session, await workspaces.get_workspace(session, ws, principal)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{ws}/members/{subject}", response_model=WorkspaceOut)
async def set_member(
    ws: WorkspaceSlug,
    subject: Annotated[str, Path(min_length=1, max_length=255)],
    body: MemberUpdate,
    session: DbSession,
    principal: Operator,
) -> WorkspaceOut:
    """Add a member, or change their role (idempotent)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    await workspaces.set_member(session, workspace, subject, body.role)
    return await workspaces.describe(session, workspace)


@router.delete("/{ws}/members/{subject}", response_model=WorkspaceOut)
async def remove_member(
    ws: WorkspaceSlug,
    subject: Annotated[str, Path(min_length=1, max_length=255)],
    session: DbSession,
    principal: Operator,
) -> WorkspaceOut:
    workspace = await workspaces.get_workspace(session, ws, principal)
    await workspaces.remove_member(session, workspace, subject)
    return await workspaces.describe(session, workspace)


@router.get("/{ws}/allowed-publishers", response_model=publishers.AllowancePage)
async def list_allowed_publishers(
    ws: WorkspaceSlug, session: DbSession, principal: CurrentPrincipal
) -> publishers.AllowancePage:
    """Publishers whose new app versions this workspace's installations follow by themselves
    (besides the workspace's own apps and modules published by operators)."""
    return await publishers.list_allowances(
        session, await workspaces.get_workspace(session, ws, principal)
    )


@router.post(
    "/{ws}/allowed-publishers",
    status_code=status.HTTP_201_CREATED,
    response_model=publishers.AllowanceOut,
    responses={200: {"model": publishers.AllowanceOut, "description": "The allowance existed"}},
)
async def allow_publisher(
    ws: WorkspaceSlug,
    body: publishers.AllowanceIn,
    session: DbSession,
    principal: Operator,
    response: Response,
) -> publishers.AllowanceOut:
    """Let the workspace's unpinned installations follow ``publisher``'s new versions (of
    ``module``, or of all its apps); idempotent (200 when it existed)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    allowance, created = await publishers.allow(session, workspace, body, principal.subject)
    if not created:
        response.status_code = status.HTTP_200_OK
    return allowance


@router.delete(
    "/{ws}/allowed-publishers/{allowance_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
async def revoke_publisher(
    ws: WorkspaceSlug, allowance_id: uuid.UUID, session: DbSession, principal: Operator
) -> Response:
    await publishers.revoke(
        session, await workspaces.get_workspace(session, ws, principal), allowance_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
