"""Events the runtime consumes: the installer's, to know what is installed and to stop flows when
a module moves to a new major version."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.connection import Bus
from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.installer import (
    ACCOUNT_INVALIDATED,
    INSTALLATION_EVENTS,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    MAJOR_UPGRADE_REASON,
    InstallationEvent,
)
from modyard.runtime import installed_components
from modyard.runtime.engine.dispatch import send
from modyard.runtime.flows.events import EventGuard, heard_event
from modyard.runtime.flows.service import event_trigger_messages, stop_flows_using
from modyard.runtime.webhooks.accounts import on_account_invalidated

log = structlog.get_logger(__name__)


async def on_installation(session: AsyncSession, event: CloudEvent) -> None:
    data = parse(InstallationEvent, event.data)
    if data is None:
        return
    await installed_components.apply_installation_event(
        session, data, removed=event.type == INSTALLATION_REMOVED
    )
    if event.type == INSTALLATION_UPGRADED and data.breaking:
        await stop_flows_using(
            session, data.workspace, data.slug, data.module, data.reason or MAJOR_UPGRADE_REASON
        )


def subscriptions_for(bus: Callable[[], Bus], guard: EventGuard) -> list[EventSubscription]:
    """``bus`` gives the service's bus once it exists (subscriptions are declared before it)."""

    async def on_any_event(session: AsyncSession, event: CloudEvent) -> None:
        """``core.event`` triggers: an event of the type a running flow of the event's workspace
        waits for starts a message (see flows/events.py for what a flow may hear)."""
        heard = heard_event(event)
        if heard is None:
            return
        if guard.too_deep(heard.depth):
            log.warning("flow_event_chain_too_deep", workspace=heard.workspace, type=heard.kind)
            return
        for message in await event_trigger_messages(session, heard, event):
            await send(bus(), message)

    return [
        EventSubscription("installations", [INSTALLATION_EVENTS], on_installation),
        EventSubscription("accounts", [ACCOUNT_INVALIDATED], on_account_invalidated),
        EventSubscription("event-triggers", ["#"], on_any_event),
    ]
