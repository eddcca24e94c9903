"""Events the appcell-gateway consumes: the installer's, to serve the cells that are installed."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.gateway import cells
from modyard.gateway.context import GatewayContext

INSTALLATION_EVENTS = "modyard.installer.installation.*"
CREATED = "modyard.installer.installation.created"
UPGRADED = "modyard.installer.installation.upgraded"
CONFIGURED = "modyard.installer.installation.configured"
REMOVED = "modyard.installer.installation.removed"


def subscriptions_for(context: Callable[[], GatewayContext]) -> list[EventSubscription]:
    """``context`` gives the gateway's context once the lifespan has built it."""

    async def on_installation(session: AsyncSession, event: CloudEvent) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if data.get("kind") != "cell" or "installation_id" not in data:
            return
        gateway = context()
        installation_id = uuid.UUID(str(data["installation_id"]))
        if event.type in (CREATED, UPGRADED):
            await cells.install(session, gateway.cell_deps, data)
        elif event.type == REMOVED:
            await cells.remove(session, gateway.cell_deps, data)
        # Settings are read from the installer per request; only the cached copy goes.
        gateway.installer.forget(installation_id)
        gateway.cells.invalidate(installation_id)

    return [EventSubscription("installations", [INSTALLATION_EVENTS], on_installation)]
