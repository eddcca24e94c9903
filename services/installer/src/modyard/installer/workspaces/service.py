"""Workspaces (tenants) and who is in them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import Principal, Role
from modyard.common.errors import Conflict, Forbidden, NotFound
from modyard.installer.models import Installation, Workspace, WorkspaceExclusion, WorkspaceMember
from modyard.installer.schemas import Member, WorkspaceCreate, WorkspaceOut
from modyard.installer.tokens import revocations


async def create_workspace(session: AsyncSession, request: WorkspaceCreate) -> Workspace:
    if await session.scalar(select(Workspace.id).where(Workspace.slug == request.slug)):
        raise Conflict(
            f"A workspace {request.slug!r} exists already; pick another slug.",
            slug="workspace-exists",
        )
    workspace = Workspace(slug=request.slug, name=request.name)
    session.add(workspace)
    await session.flush()
    for subject in dict.fromkeys(request.members):
        session.add(WorkspaceMember(workspace_id=workspace.id, subject=subject, role="member"))
    await revocations.readmit(session, request.slug, request.members)
    await session.flush()
    return workspace


async def is_member(session: AsyncSession, workspace: Workspace, subject: str) -> bool:
    return bool(
        await session.scalar(
            select(WorkspaceMember.id).where(
                WorkspaceMember.workspace_id == workspace.id, WorkspaceMember.subject == subject
            )
        )
    )


async def get_workspace(session: AsyncSession, slug: str, principal: Principal) -> Workspace:
    """The workspace, if the caller may act in it (operators and services everywhere; users in
    the workspaces that list them as members, or that their token names unless they were removed
    from it since: membership is checked at use, here straight from the table)."""
    workspace = await session.scalar(select(Workspace).where(Workspace.slug == slug))
    if workspace is None:
        raise NotFound(f"There is no workspace {slug!r}; GET /v1/workspaces lists yours.")
    if principal.is_operator or Role.service in principal.roles:
        return workspace
    if await is_member(session, workspace, principal.subject):
        return workspace
    if principal.can_access_workspace(slug) and not await revocations.is_excluded(
        session, slug, principal.subject
    ):
        return workspace
    raise Forbidden(f"You are not a member of workspace {slug!r}; ask an operator to add you.")


async def list_workspaces(session: AsyncSession, principal: Principal) -> list[Workspace]:
    query = select(Workspace).order_by(Workspace.slug)
    if not (principal.is_operator or "service" in principal.roles):
        member_of = select(WorkspaceMember.workspace_id).where(
            WorkspaceMember.subject == principal.subject
        )
        removed_from = select(WorkspaceExclusion.workspace).where(
            WorkspaceExclusion.subject == principal.subject
        )
        query = query.where(
            (Workspace.slug.in_(principal.workspaces) & Workspace.slug.not_in(removed_from))
            | (Workspace.id.in_(member_of))
        )
    return list((await session.scalars(query)).all())


async def describe(session: AsyncSession, workspace: Workspace) -> WorkspaceOut:
    members = (
        await session.scalars(
            select(WorkspaceMember)
            .where(WorkspaceMember.workspace_id == workspace.id)
            .order_by(WorkspaceMember.subject)
        )
    ).all()
    return WorkspaceOut(
        slug=workspace.slug,
        name=workspace.name,
        created_at=workspace.created_at,
        members=[Member(subject=m.subject, role=m.role, added_at=m.added_at) for m in members],
    )


async def set_member(session: AsyncSession, workspace: Workspace, subject: str, role: str) -> None:
    member = await session.scalar(
        select(WorkspaceMember).where(
            WorkspaceMember.workspace_id == workspace.id, WorkspaceMember.subject == subject
        )
    )
    if member is None:
        session.add(WorkspaceMember(workspace_id=workspace.id, subject=subject, role=role))
    else:
        member.role = role
    await revocations.readmit(session, workspace.slug, [subject])
    await session.flush()


async def remove_member(session: AsyncSession, workspace: Workspace, subject: str) -> None:
    member = await session.scalar(
        select(WorkspaceMember).where(
            WorkspaceMember.workspace_id == workspace.id, WorkspaceMember.subject == subject
        )
    )
    if member is None:
        raise NotFound(f"{subject!r} is not a member of {workspace.slug!r}.")
    await session.delete(member)
    # Their tokens may name the workspace until they expire: every service refuses those claims
    # from now on (see tokens.revocations and modyard.common.token_denials).
    await revocations.exclude(session, workspace.slug, subject)
    await session.flush()


async def delete_workspace(session: AsyncSession, workspace: Workspace) -> None:
    count = await session.scalar(
        select(func.count())
        .select_from(Installation)
        .where(Installation.workspace_id == workspace.id)
    )
    if count:
        raise Conflict(
            f"Workspace {workspace.slug!r} still has {count} installation(s); remove them first.",
            slug="workspace-not-empty",
        )
    await session.delete(workspace)
    await session.flush()
