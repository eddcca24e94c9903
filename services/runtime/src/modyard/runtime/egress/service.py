"""Reading and replacing a workspace's egress allow-list (the API's logic)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.egress.policy import Allowance, parse_cidr, parse_host_pattern
from modyard.runtime.egress.models import WorkspaceEgress
from modyard.runtime.egress.schemas import EgressAllowIn, EgressAllowOut


def describe(workspace: str, row: WorkspaceEgress | None) -> EgressAllowOut:
    if row is None:
        return EgressAllowOut(workspace=workspace, allow_cidrs=[], allow_hosts=[])
    return EgressAllowOut(
        workspace=workspace,
        allow_cidrs=[str(item) for item in row.allow_cidrs],
        allow_hosts=[str(item) for item in row.allow_hosts],
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


async def get_allow_list(session: AsyncSession, workspace: str) -> WorkspaceEgress | None:
    return await session.get(WorkspaceEgress, workspace)


async def put_allow_list(
    session: AsyncSession, workspace: str, body: EgressAllowIn, *, updated_by: str
) -> WorkspaceEgress:
    row = await session.get(WorkspaceEgress, workspace)
    if row is None:
        row = WorkspaceEgress(workspace=workspace, updated_by=updated_by)
        session.add(row)
    row.allow_cidrs = list(body.allow_cidrs)
    row.allow_hosts = list(body.allow_hosts)
    row.updated_by = updated_by
    await session.flush()
    return row


def allowance_of(row: WorkspaceEgress | None) -> Allowance | None:
    """The stored list as the policy reads it (entries were checked when written)."""
    if row is None or not (row.allow_cidrs or row.allow_hosts):
        return None
    return Allowance(
        cidrs=tuple(parse_cidr(str(item)) for item in row.allow_cidrs),
        hosts=tuple(parse_host_pattern(str(item)) for item in row.allow_hosts),
    )
