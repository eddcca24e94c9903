"""Accounts over HTTP (thin: the service layer does the work)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from modyard.common.auth import CurrentPrincipal, Principal, Role
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Forbidden
from modyard.installer import workspaces
from modyard.installer.accounts import checks, service
from modyard.installer.accounts.schemas import (
    AccountCreate,
    AccountCredentials,
    AccountOut,
    AccountPage,
    AccountTest,
    AuthServiceOut,
)
from modyard.installer.context import Context
from modyard.installer.schemas import WORKSPACE_PATTERN

router = APIRouter(prefix="/v1/workspaces/{ws}", tags=["accounts"], responses=PROBLEM_RESPONSES)
WorkspaceSlug = Annotated[str, Path(pattern=WORKSPACE_PATTERN)]


async def service_only(principal: CurrentPrincipal) -> Principal:
    # Credentials are for the components that run with them, not for people, operators included.
    if Role.service not in principal.roles:
        raise Forbidden(
            "Only services (the runtime, the runner) may read an account's credentials."
        )
    return principal


Service = Annotated[Principal, Depends(service_only)]


@router.get("/auth-services", response_model=list[AuthServiceOut])
async def list_auth_services(
    ws: WorkspaceSlug, session: DbSession, context: Context, principal: CurrentPrincipal
) -> list[AuthServiceOut]:
    """The auth services the workspace's installations provide, each with its form's fields."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    return await service.auth_services(session, context, workspace)


@router.post("/accounts", status_code=status.HTTP_201_CREATED, response_model=AccountOut)
async def create_account(
    ws: WorkspaceSlug,
    body: AccountCreate,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    response: Response,
) -> AccountOut:
    """Store an API-key or password account once auth.js's ``validate`` accepted it (422 with
    the vendor's message otherwise). The caller owns it."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account = await service.create_account(session, context, workspace, principal, body)
    response.headers["Location"] = f"/v1/workspaces/{ws}/accounts/{account.id}"
    return service.describe(account, workspace)


@router.get("/accounts", response_model=AccountPage)
async def list_accounts(
    ws: WorkspaceSlug,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    service_id: Annotated[str | None, Query(alias="service", max_length=255)] = None,
    owner: Annotated[str | None, Query(max_length=255)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> AccountPage:
    """The caller's accounts (every account for operators: names, never credentials),
    newest first."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    return await service.list_accounts(
        session,
        workspace,
        principal,
        service=service_id,
        owner=owner,
        cursor=cursor,
        limit=limit or context.settings.default_page_size,
    )


@router.get("/accounts/{account_id}", response_model=AccountOut)
async def get_account(
    ws: WorkspaceSlug, account_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> AccountOut:
    workspace = await workspaces.get_workspace(session, ws, principal)
    return service.describe(
        await service.get_account(session, workspace, principal, account_id), workspace
    )


@router.delete(
    "/accounts/{account_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_account(
    ws: WorkspaceSlug, account_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> Response:
    workspace = await workspaces.get_workspace(session, ws, principal)
    await service.delete_account(
        session, await service.get_account(session, workspace, principal, account_id)
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/accounts/{account_id}/test", response_model=AccountTest)
async def test_account(
    ws: WorkspaceSlug,
    account_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> AccountTest:
    """Ask the vendor again (auth.js's ``validate``); the account's status follows."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account = await service.get_account(session, workspace, principal, account_id)
    return await service.test_account(session, context, workspace, account)


@router.get("/accounts/{account_id}/credentials", response_model=AccountCredentials)
async def get_credentials(
    ws: WorkspaceSlug,
    account_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: Service,
) -> AccountCredentials:
    """``context.auth`` for a component (services only); OAuth tokens are refreshed first when
    they expire soon."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account = await service.get_account(session, workspace, principal, account_id)
    return AccountCredentials(
        id=account.id,
        service=account.service,
        type=account.type,
        auth=await service.credentials_of(session, context, workspace, account),
    )


@router.post("/accounts/checks", response_model=checks.AccountCheckResult)
async def check_accounts(
    ws: WorkspaceSlug, body: checks.AccountCheck, session: DbSession, principal: Service
) -> checks.AccountCheckResult:
    """Whether each flow node has the account its component needs, owned by the flow's owner
    (the runtime asks before starting a flow; services only)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    return await checks.check(session, workspace, body)
