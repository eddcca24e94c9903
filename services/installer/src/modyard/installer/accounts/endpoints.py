"""Accounts over HTTP (thin: the service layer does the work)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field

from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Conflict, Forbidden, problem_response
from modyard.installer.accounts import checks, oauth, service
from modyard.installer.accounts.models import Account
from modyard.installer.accounts.schemas import (
    AccountCreate,
    AccountCredentials,
    AccountOut,
    AccountPage,
    AccountShares,
    AccountTest,
    AuthServiceOut,
)
from modyard.installer.context import Context
from modyard.installer.schemas import WORKSPACE_PATTERN
from modyard.installer.workspaces import service as workspaces

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


@router.put("/accounts/{account_id}/shares", response_model=AccountOut)
async def share_account(
    ws: WorkspaceSlug,
    account_id: uuid.UUID,
    body: AccountShares,
    session: DbSession,
    principal: CurrentPrincipal,
) -> AccountOut:
    """Let other members' flows run with your account (they never see its credentials);
    the list replaces the previous one ([] stops sharing)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account = await service.get_account(session, workspace, principal, account_id)
    if account.owner != principal.subject:
        raise Forbidden("Only the account's owner shares it.", slug="not-the-owner")
    return service.describe(
        await service.share_account(session, workspace, account, body.subjects), workspace
    )


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


def _credentials(account: Account, fresh: oauth.Fresh, instance: str) -> Any:
    if fresh.invalid is not None:
        # Returned, not raised: the account's invalidation commits with this answer.
        problem = Conflict(
            f"The account is invalid: {fresh.invalid}. Its owner must connect it again.",
            slug="account-invalid",
        )
        return problem_response(problem.to_detail(instance))
    return AccountCredentials(
        id=account.id, service=account.service, type=account.type, auth=fresh.auth
    )


@router.get(
    "/accounts/{account_id}/credentials",
    response_model=AccountCredentials,
    responses={409: {"description": "The account is invalid (a refresh was refused)"}},
)
async def get_credentials(
    request: Request,
    ws: WorkspaceSlug,
    account_id: uuid.UUID,
    session: DbSession,
    context: Context,
    principal: Service,
) -> Any:
    """``context.auth`` for a component (services only); OAuth tokens are refreshed first when
    they expire soon."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account = await service.get_account(session, workspace, principal, account_id)
    fresh = await service.credentials_of(session, context, workspace, account)
    return _credentials(account, fresh, request.url.path)


class RefreshIn(BaseModel):
    #: The access token a component was refused with (a 401): refreshed only if it is still
    #: the current one, so concurrent callers cause one refresh.
    failed_token: str | None = Field(default=None, max_length=8192)


@router.post(
    "/accounts/{account_id}/refresh",
    response_model=AccountCredentials,
    responses={409: {"description": "The account is invalid (a refresh was refused)"}},
)
async def refresh_account(
    request: Request,
    ws: WorkspaceSlug,
    account_id: uuid.UUID,
    body: RefreshIn,
    session: DbSession,
    context: Context,
    principal: Service,
) -> Any:
    """New OAuth tokens after a component's 401 (services only)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account = await service.get_account(session, workspace, principal, account_id)
    if account.type != "oauth2":
        fresh = await service.credentials_of(session, context, workspace, account)
    else:
        fresh = await oauth.refresh_after_401(
            session, context, workspace, account, body.failed_token
        )
    return _credentials(account, fresh, request.url.path)


@router.post("/accounts/connect", response_model=oauth.ConnectOut)
async def connect_account(
    ws: WorkspaceSlug,
    body: oauth.ConnectIn,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> oauth.ConnectOut:
    """Start connecting an OAuth 2 account: send the user's browser to ``authorize_url``."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    return await oauth.start_connect(session, context, workspace, principal, body)


class ConnectedOut(AccountOut):
    #: Where the browser goes next (the ``return_to`` given at connect).
    return_to: str | None


@router.post("/accounts/callback", status_code=status.HTTP_201_CREATED, response_model=ConnectedOut)
async def finish_connect(
    ws: WorkspaceSlug,
    body: oauth.CallbackIn,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> ConnectedOut:
    """Finish an OAuth 2 connection with the provider's ``code`` and ``state`` (as the user who
    started it): the tokens are stored as the caller's new account."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    account, return_to = await oauth.finish_connect(session, context, workspace, principal, body)
    return ConnectedOut(**service.describe(account, workspace).model_dump(), return_to=return_to)


@router.post("/accounts/checks", response_model=checks.AccountCheckResult)
async def check_accounts(
    ws: WorkspaceSlug, body: checks.AccountCheck, session: DbSession, principal: Service
) -> checks.AccountCheckResult:
    """Whether each flow node has the account its component needs, owned by the flow's owner
    (the runtime asks before starting a flow; services only)."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    return await checks.check(session, workspace, body)


auth_services_router = APIRouter(
    prefix="/v1/auth-services", tags=["accounts"], responses=PROBLEM_RESPONSES
)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
ServiceId = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")]


@auth_services_router.get("", response_model=list[oauth.AuthServiceClientOut])
async def list_auth_service_clients(
    session: DbSession, _: Operator
) -> list[oauth.AuthServiceClientOut]:
    """The OAuth clients operators set (client ids; never the secrets)."""
    return [oauth.describe_client(row) for row in await oauth.list_clients(session)]


@auth_services_router.get("/{service_id}", response_model=oauth.AuthServiceClientOut)
async def get_auth_service_client(
    service_id: ServiceId, session: DbSession, _: Operator
) -> oauth.AuthServiceClientOut:
    return oauth.describe_client(await oauth.get_client(session, service_id))


@auth_services_router.put("/{service_id}", response_model=oauth.AuthServiceClientOut)
async def set_auth_service_client(
    service_id: ServiceId,
    body: oauth.AuthServiceIn,
    session: DbSession,
    context: Context,
    principal: Operator,
) -> oauth.AuthServiceClientOut:
    """Set the service's OAuth client (the vendor's app registration); the secret is stored
    encrypted and never shown again."""
    row = await oauth.set_client(session, context, service_id, body, principal.subject)
    return oauth.describe_client(row)


@auth_services_router.delete(
    "/{service_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
async def delete_auth_service_client(
    service_id: ServiceId, session: DbSession, _: Operator
) -> Response:
    await session.delete(await oauth.get_client(session, service_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
