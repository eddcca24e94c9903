"""Events the installer consumes: a newly published version moves unpinned installations."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.installer.context import InstallerContext
from modyard.installer.installations.upgrading import follow_new_version

MODULE_PUBLISHED = "modyard.registry.module.published"


def subscriptions_for(context: InstallerContext) -> list[EventSubscription]:
    async def on_published(session: AsyncSession, event: CloudEvent) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if isinstance(data.get("name"), str) and isinstance(data.get("version"), str):
            await follow_new_version(session, context, data["name"], data["version"])

    return [EventSubscription("follow-versions", [MODULE_PUBLISHED], on_published)]
