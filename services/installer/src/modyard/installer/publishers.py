"""Whose new versions a workspace's installations follow by themselves.

A workspace published as an app through the runtime is a *publisher*: the runtime writes the
publishing workspace into the app's index (``modyardPublisher``, kept by the prismeai format in
``extra.prismeai.workspace``; only the runtime and operators can publish to the registry). When
such an app publishes a new version, unpinned installations follow it only in the publisher's own
workspace and in workspaces whose operator allowed that publisher (for one module, or ``*`` for
all its apps; publisher ``*`` allows every publisher). Modules published by operators (no
publisher workspace) are followed as before. Installing or upgrading by hand is not affected.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, Field
from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, func, or_, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from modyard.common.errors import NotFound
from modyard.installer.models import Base, Workspace
from modyard.installer.schemas import SLUG_PATTERN

#: The key of a published app's index naming the workspace that published it.
PUBLISHER_KEY: Final = "modyardPublisher"
ANY: Final = "*"


class PublisherAllowance(Base):
    __tablename__ = "publisher_allowances"
    __table_args__ = (UniqueConstraint("workspace_id", "publisher", "module"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    #: A publisher workspace's slug, or ``*``.
    publisher: Mapped[str] = mapped_column(String(64))
    #: One of its modules (apps), or ``*``.
    module: Mapped[str] = mapped_column(String(128), default=ANY)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AllowanceIn(BaseModel):
    publisher: str = Field(
        pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,63})$",
        description="The publishing workspace's slug, or * for every publisher",
    )
    module: str = Field(
        default=ANY, pattern=rf"^(\*|{SLUG_PATTERN[1:-1]})$", description="One app, or * for all"
    )


class AllowanceOut(AllowanceIn):
    id: uuid.UUID
    created_by: str
    created_at: datetime


class AllowancePage(BaseModel):
    items: list[AllowanceOut]


def publisher_of(manifest: dict[str, Any] | None) -> str | None:
    """The workspace that published this version through the runtime (``None``: an operator)."""
    extra = (manifest or {}).get("extra") or {}
    workspace = ((extra.get("prismeai") or {}).get("workspace")) or {}
    publisher = workspace.get(PUBLISHER_KEY) if isinstance(workspace, dict) else None
    return publisher if isinstance(publisher, str) and publisher else None


async def may_follow(
    session: AsyncSession, workspace: Workspace, module: str, publisher: str | None
) -> bool:
    if publisher is None or publisher == workspace.slug:
        return True
    allowed = await session.scalar(
        select(PublisherAllowance.id).where(
            PublisherAllowance.workspace_id == workspace.id,
            or_(PublisherAllowance.publisher == publisher, PublisherAllowance.publisher == ANY),
            or_(PublisherAllowance.module == module, PublisherAllowance.module == ANY),
        )
    )
    return allowed is not None


def _out(row: PublisherAllowance) -> AllowanceOut:
    return AllowanceOut.model_validate(row, from_attributes=True)


async def list_allowances(session: AsyncSession, workspace: Workspace) -> AllowancePage:
    rows = await session.scalars(
        select(PublisherAllowance)
        .where(PublisherAllowance.workspace_id == workspace.id)
        .order_by(PublisherAllowance.created_at)
    )
    return AllowancePage(items=[_out(row) for row in rows])


async def allow(
    session: AsyncSession, workspace: Workspace, body: AllowanceIn, actor: str
) -> tuple[AllowanceOut, bool]:
    """The allowance (idempotent); whether it is new."""
    existing = await session.scalar(
        select(PublisherAllowance).where(
            PublisherAllowance.workspace_id == workspace.id,
            PublisherAllowance.publisher == body.publisher,
            PublisherAllowance.module == body.module,
        )
    )
    if existing is not None:
        return _out(existing), False
    row = PublisherAllowance(
        workspace_id=workspace.id, publisher=body.publisher, module=body.module, created_by=actor
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return _out(row), True


async def revoke(session: AsyncSession, workspace: Workspace, allowance_id: uuid.UUID) -> None:
    row = await session.get(PublisherAllowance, allowance_id)
    if row is None or row.workspace_id != workspace.id:
        raise NotFound(f"Workspace {workspace.slug!r} has no allowed publisher {allowance_id}.")
    await session.delete(row)
    await session.flush()
