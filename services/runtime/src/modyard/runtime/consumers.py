"""Events the runtime consumes: the installer's, to know what is installed and to stop flows when
a module moves to a new major version."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.runtime import catalog
from modyard.runtime.flows.service import stop_flows_using

INSTALLATION_EVENTS = "modyard.installer.installation.*"
REMOVED = "modyard.installer.installation.removed"
UPGRADED = "modyard.installer.installation.upgraded"


async def on_installation(session: AsyncSession, event: CloudEvent) -> None:
    data = event.data if isinstance(event.data, dict) else {}
    if not {"workspace", "slug", "installation_id", "module", "version"} <= data.keys():
        return
    await catalog.apply_installation_event(session, data, removed=event.type == REMOVED)
    if event.type == UPGRADED and data.get("breaking"):
        await stop_flows_using(
            session,
            str(data["workspace"]),
            str(data["slug"]),
            str(data["module"]),
            str(data.get("reason") or "module_major_upgrade"),
        )


subscriptions = [EventSubscription("installations", [INSTALLATION_EVENTS], on_installation)]
