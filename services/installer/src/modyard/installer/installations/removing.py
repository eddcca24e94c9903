"""Removing an installation with the app instances nested in it."""

from __future__ import annotations

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict
from modyard.installer.context import InstallerContext
from modyard.installer.events import (
    INSTALLATION_REMOVED,
    installation_event,
)
from modyard.installer.installations.steps import (
    is_import,
    lock_workspace,
)
from modyard.installer.models import Installation, InstallationDependency, Workspace

log = structlog.get_logger(__name__)


async def remove(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    installation: Installation,
    *,
    force: bool,
) -> list[str]:
    """Delete the installation and the app instances nested in it; returns the removed slugs."""
    await lock_workspace(session, workspace)
    nested = list(
        (
            await session.scalars(
                select(Installation).where(Installation.parent_id == installation.id)
            )
        ).all()
    )
    doomed = [installation, *[item for item in nested if is_import(item)]]
    doomed_ids = {item.id for item in doomed}
    dependents = (
        (
            await session.execute(
                select(Installation.slug)
                .join(
                    InstallationDependency,
                    InstallationDependency.installation_id == Installation.id,
                )
                .where(
                    InstallationDependency.depends_on_id.in_(doomed_ids),
                    Installation.id.not_in(doomed_ids),
                )
            )
        )
        .scalars()
        .all()
    )
    if dependents and not force:
        raise Conflict(
            f"{', '.join(sorted(set(dependents)))} depend(s) on {installation.slug!r}; remove them first, "
            "or send ?force=true to remove it anyway (they will stop working until it is reinstalled).",
            slug="has-dependents",
            dependents=sorted(set(dependents)),
        )
    for item in doomed:
        await record_event(
            session,
            installation_event(
                INSTALLATION_REMOVED,
                context.settings.source,
                workspace.slug,
                item,
                forced=bool(dependents),
            ),
        )
    for item in nested:
        if item.id not in doomed_ids:
            item.parent_id = None
    for item in doomed:
        await session.delete(item)
    await session.flush()
    return [item.slug for item in doomed]
