"""``when.schedules``: cron expressions (UTC, minute precision) that start automations.

Every minute each runtime process tries to claim the minute for each workspace that has
schedules (an ``UPDATE … WHERE scheduled_until < minute``): one process wins and runs that
workspace's due automations, so several replicas never run a schedule twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog
from croniter import croniter
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.errors import Problem
from modyard.runtime.automations import store
from modyard.runtime.automations.models import AppInstance, AutomationWorkspace, StoredAutomation
from modyard.runtime.automations.service import AutomationService, Target

log = structlog.get_logger(__name__)


def is_due(cron: str, minute: datetime) -> bool:
    try:
        return bool(croniter.match(cron, minute))
    except (ValueError, KeyError):
        return False


async def _workspaces_with_schedules(session: AsyncSession) -> set[str]:
    own = await session.scalars(
        select(StoredAutomation.workspace).where(
            StoredAutomation.definition["when"].has_key("schedules")
        )
    )
    # App versions carry their automations in the manifest; any instance may have schedules.
    instances = await session.scalars(select(AppInstance.workspace))
    return set(own) | set(instances)


async def run_due(service: AutomationService, minute: datetime) -> int:
    """Run what is due at ``minute`` in the workspaces this process claims; how many ran."""
    ran = 0
    async with service.database.transaction() as session:
        workspaces = await _workspaces_with_schedules(session)
    for workspace in sorted(workspaces):
        async with service.database.transaction() as session:
            await store.workspace_settings(session, workspace)
            claimed = await session.scalar(
                update(AutomationWorkspace)
                .where(
                    AutomationWorkspace.workspace == workspace,
                    or_(
                        AutomationWorkspace.scheduled_until.is_(None),
                        AutomationWorkspace.scheduled_until < minute,
                    ),
                )
                .values(scheduled_until=minute)
                .returning(AutomationWorkspace.workspace)
            )
            if claimed is None:
                continue
            root = await service.programs.get(workspace, session)
            for program in root.programs():
                for automation in program.automations.values():
                    if automation.disabled:
                        continue  # registered, never run (Prisme.ai's ``disabled: true``)
                    if not any(is_due(cron, minute) for cron in automation.schedules):
                        continue
                    try:
                        await service.run(
                            session,
                            workspace,
                            Target(program, automation, root),
                            trigger={"type": "schedule", "minute": minute.isoformat()},
                        )
                        ran += 1
                    except Problem as exc:
                        log.warning(
                            "automation.schedule_failed",
                            workspace=workspace,
                            automation=automation.slug,
                            error=exc.detail,
                        )
    return ran


async def run_schedules(service: AutomationService) -> None:
    """Forever: at each minute boundary, run the schedules due."""
    while True:
        now = datetime.now(UTC)
        minute = now.replace(second=0, microsecond=0)
        try:
            await run_due(service, minute)
        except Exception:
            log.exception("automation.schedules_failed")
        following = minute + timedelta(minutes=1)
        await asyncio.sleep(max(0.5, (following - datetime.now(UTC)).total_seconds()))
