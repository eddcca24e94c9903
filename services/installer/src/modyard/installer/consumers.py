"""Events the installer consumes: a newly published version moves unpinned installations."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.registry import MODULE_PUBLISHED, ModuleVersionEvent
from modyard.installer.context import InstallerContext
from modyard.installer.installations.upgrading import follow_new_version


def subscriptions_for(context: InstallerContext) -> list[EventSubscription]:
    async def on_published(session: AsyncSession, event: CloudEvent) -> None:
        data = parse(ModuleVersionEvent, event.data)
        if data is not None:
            await follow_new_version(session, context, data.name, data.version)

    return [EventSubscription("follow-versions", [MODULE_PUBLISHED], on_published)]
