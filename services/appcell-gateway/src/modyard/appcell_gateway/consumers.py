"""Events the appcell-gateway consumes: the installer's, to serve the cells that are installed.

Two ways in: the ``appcell-gateway.events`` queue gives each installation event to one replica,
which records the cell (:func:`subscriptions_for`); every replica also hears them on a queue of its
own (:func:`installation_news`) and drops its copies of that installation's settings and compiled
cell, so that a configuration change reaches the cell's next request through any replica, not
only through the one that recorded it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.appcell_gateway.cells import store
from modyard.appcell_gateway.context import GatewayContext
from modyard.common.bus.connection import TopologyHook
from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.common.bus.process_queue import process_queue
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
        # The compiled cell is dropped again after the row it is compiled from changed (the
        # process queue's drop may come before it); every process's settings copy goes through
        # installation_news.
        gateway.cells.invalidate(installation_id)

    return [EventSubscription("installations", [INSTALLATION_EVENTS], on_installation)]


def installation_news(context: GatewayContext) -> TopologyHook:
    """This process's queue of installation events: each drops the installation's cached settings
    and compiled cell here. After a lost broker connection every cached setting goes, since a
    ``configured`` event may have been missed meanwhile (a compiled cell checks its stored
    revision anyway, every ``catalogue_refresh_seconds``)."""

    def on_event(event: CloudEvent) -> None:
        data = parse(InstallationEvent, event.data)
        if data is None or data.kind != "cell":
            return
        installation_id = uuid.UUID(data.installation_id)
        context.installer.forget(installation_id)
        context.cells.invalidate(installation_id)

    return process_queue(
        "appcell-gateway.installations",
        [INSTALLATION_EVENTS],
        on_event,
        on_reconnect=context.installer.forget_all,
    )
