"""Whether a flow's nodes have the accounts they need, asked by the runtime when a flow starts.

A component needs an account when it names an ``auth.service`` that its module's auth.js
serves (the manifest's ``extra.auth``); a module without auth.js keeps giving its components
the installation's configuration as ``context.auth``. The node's account must exist in the
workspace, serve that service, belong to the flow's owner and not be marked invalid. Every
problem is returned at once.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.installer.accounts.models import Account
from modyard.installer.models import Installation, Workspace


class NodeNeed(BaseModel):
    node: str = Field(max_length=128)
    installation: str = Field(max_length=128)
    component: str = Field(max_length=255)
    account: str | None = Field(default=None, max_length=64)


class AccountCheck(BaseModel):
    owner: str = Field(min_length=1, max_length=255)
    nodes: list[NodeNeed] = Field(max_length=2000)


class NodeProblem(BaseModel):
    node: str
    detail: str


class AccountCheckResult(BaseModel):
    problems: list[NodeProblem]
    #: Node id → the auth service it needs an account of (nodes that need none are left out).
    services: dict[str, str]


def _needed_service(installation: Installation, component: str) -> str | None:
    manifest = installation.manifest
    extra = manifest.get("extra") or {}
    served = {str(e.get("service")) for e in (extra.get("auth") or []) if isinstance(e, dict)}
    for found in manifest.get("components") or []:
        if found.get("name") == component:
            service = (found.get("auth") or {}).get("service")
            return str(service) if service and str(service) in served else None
    return None


async def check(
    session: AsyncSession, workspace: Workspace, body: AccountCheck
) -> AccountCheckResult:
    slugs = {need.installation for need in body.nodes}
    installations = {
        row.slug: row
        for row in await session.scalars(
            select(Installation).where(
                Installation.workspace_id == workspace.id, Installation.slug.in_(slugs)
            )
        )
    }
    problems: list[NodeProblem] = []
    services: dict[str, str] = {}
    for need in body.nodes:
        installation = installations.get(need.installation)
        service = _needed_service(installation, need.component) if installation else None
        if service is None:
            continue
        services[need.node] = service
        connect = (
            f"connect one (POST /v1/workspaces/{workspace.slug}/accounts, or the backoffice's "
            f"Connect account) and name its id as nodes.{need.node}.account"
        )
        if not need.account:
            problems.append(
                NodeProblem(
                    node=need.node,
                    detail=f"The component needs an account of {service!r} owned by "
                    f"{body.owner!r}: {connect}.",
                )
            )
            continue
        try:
            account_id = uuid.UUID(need.account)
        except ValueError:
            account = None
        else:
            account = await session.scalar(
                select(Account).where(
                    Account.workspace_id == workspace.id, Account.id == account_id
                )
            )
        if account is None:
            detail = f"Workspace {workspace.slug!r} has no account {need.account!r}; {connect}."
        elif account.service != service:
            detail = (
                f"Account {need.account} is of {account.service!r}, the component needs one of "
                f"{service!r}."
            )
        elif account.owner != body.owner and body.owner not in (account.shared_with or []):
            detail = (
                f"Account {need.account} is not the flow owner's ({body.owner!r}) nor shared "
                f"with them: a flow runs only with its owner's accounts or ones shared with the "
                f"owner; {connect}."
            )
        elif account.status != "valid":
            detail = (
                f"Account {need.account} is invalid ({account.invalid_reason or 'refused'}); "
                "connect it again or test it (POST …/accounts/{id}/test)."
            )
        else:
            continue
        problems.append(NodeProblem(node=need.node, detail=detail))
    return AccountCheckResult(problems=problems, services=services)
