"""Events the appcell-gateway consumes: the installer's, to serve the cells that are installed."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.appcell_gateway.cells import store
from modyard.appcell_gateway.context import GatewayContext
from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.installer import (
    INSTALLATION_CREATED,
    INSTALLATION_EVENTS,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    InstallationEvent,
)


def subscriptions_for(context: Callable[[], GatewayContext]) -> list[EventSubscription]:
    """``context`` gives the gateway's context once the lifespan has built it."""

    async def on_installation(session: AsyncSession, event: CloudEvent) -> None:
        data = parse(InstallationEvent, event.data)
        if data is None or data.kind != "cell":
            return
        gateway = context()
        installation_id = uuid.UUID(data.installation_id)
        if event.type in (INSTALLATION_CREATED, INSTALLATION_UPGRADED):
            await store.install(session, gateway.cell_deps, data)
        elif event.type == INSTALLATION_REMOVED:
            await store.remove(session, gateway.cell_deps, data)
        # Settings are read from the installer per request; only the cached copy goes.
        gateway.installer.forget(installation_id)
        gateway.cells.invalidate(installation_id)

    return [EventSubscription("installations", [INSTALLATION_EVENTS], on_installation)]
