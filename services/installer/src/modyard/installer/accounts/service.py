"""Accounts: storing, listing, testing and deleting them, and handing their credentials to the
components that run with them.

An account belongs to its owner (the token subject that created it) in one workspace. The
owner sees and uses it; operators see that it exists (never its credentials); services (the
runtime and the runner) read its credentials through :func:`credentials`. Credentials are
encrypted with the installer's MultiFernet keys and never logged or put in events.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy import Select, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import Principal, Role
from modyard.common.errors import InvalidParam, NotFound, ValidationFailed
from modyard.installer.accounts import cursors, oauth, providers
from modyard.installer.accounts.models import Account
from modyard.installer.accounts.schemas import (
    AccountCreate,
    AccountOut,
    AccountPage,
    AccountTest,
    AuthServiceOut,
)
from modyard.installer.context import InstallerContext
from modyard.installer.models import Workspace, WorkspaceMember

log = structlog.get_logger(__name__)

#: Account types whose credentials a user types in (auth.js's form).
FORM_TYPES = frozenset({"apiKey", "pwd"})


def sees_every_account(principal: Principal) -> bool:
    return principal.is_operator or Role.service in principal.roles


def describe(account: Account, workspace: Workspace) -> AccountOut:
    return AccountOut(
        id=account.id,
        workspace=workspace.slug,
        owner=account.owner,
        service=account.service,
        type=account.type,
        name=account.name,
        status=account.status,
        invalid_reason=account.invalid_reason,
        shared_with=list(account.shared_with or []),
        expires_at=account.expires_at,
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


def _visible(query: Select[tuple[Account]], principal: Principal) -> Select[tuple[Account]]:
    return (
        query if sees_every_account(principal) else query.where(Account.owner == principal.subject)
    )


async def auth_services(
    session: AsyncSession, context: InstallerContext, workspace: Workspace
) -> list[AuthServiceOut]:
    found = []
    for provider in await providers.list_providers(session, workspace):
        described = await providers.form(context, workspace, provider)
        found.append(
            AuthServiceOut(
                service=provider.service,
                type=described.get("type") or provider.type,
                installation=provider.installation,
                module=provider.module,
                version=provider.version,
                fields=dict(described.get("fields") or {}),
            )
        )
    return found


def _check_form(fields: dict[str, Any], credentials: dict[str, Any]) -> None:
    errors = [
        InvalidParam(
            pointer=f"/body/credentials/{name}",
            detail=f"required: {(spec or {}).get('name') or name}"
            + (f" ({spec['tooltip']})" if isinstance(spec, dict) and spec.get("tooltip") else ""),
        )
        for name, spec in fields.items()
        if not str(credentials.get(name) if credentials.get(name) is not None else "").strip()
    ]
    errors += [
        InvalidParam(
            pointer=f"/body/credentials/{name}",
            detail=f"not a field of this auth service; its fields: {', '.join(fields)}",
        )
        for name in credentials
        if fields and name not in fields
    ]
    if errors:
        raise ValidationFailed(
            "The credentials do not fill the auth service's form; see errors.",
            slug="invalid-credentials",
            errors=errors,
        )


async def create_account(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    principal: Principal,
    body: AccountCreate,
) -> Account:
    """Validate the credentials with auth.js's ``validate`` (the vendor is asked), then store."""
    provider = await providers.find_provider(session, workspace, body.service)
    described = await providers.form(context, workspace, provider)
    kind = str(described.get("type") or provider.type or "")
    if kind not in FORM_TYPES:
        raise ValidationFailed(
            f"{body.service} is an {kind or 'unknown'} auth service: connect the account through "
            f"POST /v1/workspaces/{workspace.slug}/accounts/connect (the provider's sign-in).",
            slug="connect-required",
        )
    _check_form(dict(described.get("fields") or {}), body.credentials)
    answer = await providers.ask(context, workspace, provider, "connect", body.credentials)
    if not answer.get("ok"):
        message = str(answer.get("message") or "the credentials were refused")
        raise ValidationFailed(
            f"{body.service} refused the credentials: {message}",
            slug="account-validation-failed",
            vendor_message=message,
            vendor_status=answer.get("status"),
        )
    named = (answer.get("result") or {}).get("name")
    account = Account(
        workspace_id=workspace.id,
        owner=principal.subject,
        service=body.service,
        type=kind,
        name=body.name or named or f"{body.service} account",
        secrets=context.secrets.encrypt_json(body.credentials),
        status="valid",
        refreshes=0,
    )
    session.add(account)
    await session.flush()
    await session.refresh(account)
    log.info("account_created", workspace=workspace.slug, service=body.service, id=str(account.id))
    return account


async def list_accounts(
    session: AsyncSession,
    workspace: Workspace,
    principal: Principal,
    *,
    service: str | None,
    owner: str | None,
    cursor: str | None,
    limit: int,
) -> AccountPage:
    query = _visible(select(Account).where(Account.workspace_id == workspace.id), principal)
    if service:
        query = query.where(Account.service == service)
    if owner:
        query = query.where(Account.owner == owner)
    if cursor:
        created_at, identifier = cursors.decode(cursor)
        query = query.where(
            tuple_(Account.created_at, Account.id)
            < tuple_(literal(created_at), literal(identifier))
        )
    rows = list(
        (
            await session.scalars(
                query.order_by(Account.created_at.desc(), Account.id.desc()).limit(limit + 1)
            )
        ).all()
    )
    page = rows[:limit]
    return AccountPage(
        items=[describe(account, workspace) for account in page],
        next_cursor=cursors.encode(page[-1].created_at, page[-1].id) if len(rows) > limit else None,
    )


async def get_account(
    session: AsyncSession,
    workspace: Workspace,
    principal: Principal,
    account_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Account:
    """The account if the caller may see it; 404 alike for another workspace's or user's."""
    query = _visible(
        select(Account).where(Account.workspace_id == workspace.id, Account.id == account_id),
        principal,
    )
    account = await session.scalar(query.with_for_update() if for_update else query)
    if account is None:
        raise NotFound(
            f"Workspace {workspace.slug!r} has no account {account_id} of yours; "
            f"GET /v1/workspaces/{workspace.slug}/accounts lists them."
        )
    return account


async def delete_account(session: AsyncSession, account: Account) -> None:
    await session.delete(account)
    await session.flush()


async def test_account(
    session: AsyncSession, context: InstallerContext, workspace: Workspace, account: Account
) -> AccountTest:
    """Run auth.js's ``validate`` (or ``validateAccessToken``) with the stored credentials; the
    account's status follows the answer."""
    provider = await providers.find_provider(session, workspace, account.service)
    fresh = await credentials_of(session, context, workspace, account)
    if fresh.invalid is not None:
        return AccountTest(valid=False, message=fresh.invalid, account=describe(account, workspace))
    values = dict(fresh.auth)
    init: dict[str, Any] | None = None
    if account.type in ("oauth2", "oauth"):
        client, client_values = await oauth.client_values(context, account.service, session)
        values = {**client_values, **values}
        # A definition written as a function is built from the client's credentials.
        init = oauth.oauth1_init(context, client, "") if account.type == "oauth" else client_values
    answer = await providers.ask(context, workspace, provider, "test", values, init_data=init)
    valid = bool(answer.get("ok"))
    message = None if valid else str(answer.get("message") or "the credentials were refused")
    account.status = "valid" if valid else "invalid"
    account.invalid_reason = message
    await session.flush()
    await session.refresh(account)
    return AccountTest(valid=valid, message=message, account=describe(account, workspace))


async def credentials_of(
    session: AsyncSession, context: InstallerContext, workspace: Workspace, account: Account
) -> oauth.Fresh:
    """What a component gets as ``context.auth``: the form's values, or the OAuth tokens
    (refreshed first when they expire within the margin, see oauth.py)."""
    if account.type == "oauth2":
        return await oauth.fresh_tokens(session, context, workspace, account)
    if account.type == "oauth":
        return await oauth.oauth1_credentials(session, context, account)
    return oauth.Fresh(context.secrets.decrypt_json(account.secrets))


async def share_account(
    session: AsyncSession, workspace: Workspace, account: Account, subjects: list[str]
) -> Account:
    """Let these users' flows run with the account (the owner's choice; replaces the list)."""
    members = await workspace_members(session, workspace)
    strangers = [subject for subject in subjects if subject not in members]
    if strangers:
        raise ValidationFailed(
            "An account is shared only with members of its workspace; not members: "
            + ", ".join(strangers)
            + ".",
            slug="not-a-member",
            errors=[
                InvalidParam(pointer=f"/body/subjects/{subjects.index(s)}", detail="not a member")
                for s in strangers
            ],
        )
    account.shared_with = sorted(set(subjects) - {account.owner})
    await session.flush()
    await session.refresh(account)
    return account


async def workspace_members(session: AsyncSession, workspace: Workspace) -> set[str]:
    found = await session.scalars(
        select(WorkspaceMember.subject).where(WorkspaceMember.workspace_id == workspace.id)
    )
    return set(found)
