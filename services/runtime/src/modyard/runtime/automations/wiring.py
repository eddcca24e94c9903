"""What the runtime's app needs to run automations and apps: started by ``app.py`` in one line.

Holds the subscriptions (declared before the service starts, so their handlers look the running
parts up when events arrive), and starts the automation service, the app-instance tracker and
the schedule loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.installer import INSTALLATION_EVENTS
from modyard.contracts.events.runtime import (
    AUTOMATION_EVENT_EMITTED,
    AUTOMATIONS_CHANGED,
    AutomationEventEmitted,
    AutomationsChanged,
)
from modyard.runtime.apps.instances import InstanceTracker
from modyard.runtime.apps.registry_client import RegistryClient
from modyard.runtime.automations import components
from modyard.runtime.automations.events import EventHub
from modyard.runtime.automations.programs import ProgramCache
from modyard.runtime.automations.schedules import run_schedules
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.context import SLOT
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.replica_news import ReplicaNews
from modyard.runtime.settings import RuntimeSettings


class AutomationsRuntime:
    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings
        self.service: AutomationService | None = None
        self.tracker: InstanceTracker | None = None
        self.registry: RegistryClient | None = None
        self.installer: InstallerClient | None = None

    @property
    def subscriptions(self) -> list[EventSubscription]:
        return [
            EventSubscription("automation-events", [AUTOMATION_EVENT_EMITTED], self._on_event),
            EventSubscription("app-instances", [INSTALLATION_EVENTS], self._on_installation),
        ]

    async def _on_event(self, session: AsyncSession, event: CloudEvent) -> None:
        if self.service is None:
            raise RuntimeError("automations are not started yet")  # redelivered later
        await self.service.on_event(session, event)

    async def _on_installation(self, session: AsyncSession, event: CloudEvent) -> None:
        if self.tracker is None:
            raise RuntimeError("automations are not started yet")
        await self.tracker.on_installation(session, event)

    def _on_wait_event(self, event: CloudEvent) -> None:
        """An emitted event, heard by every runtime process on a queue of its own
        (``runtime.news.<id>``, replica_news.py): the shared ``runtime.events`` queue gives each
        event to one replica, and a ``wait`` may be in any."""
        if self.service is None:
            return
        data = parse(AutomationEventEmitted, event.data)
        if data is not None:
            self.service.hub.publish(data.workspace, data.type, data.payload)

    async def start(self, app: FastAPI, news: ReplicaNews) -> None:
        """``news``: this process's queue of its own, declared once every part registered."""
        box = self.settings.secret_box()
        programs = ProgramCache(app.state.database, box, ttl=self.settings.program_cache_seconds)

        def automations_changed(event: CloudEvent) -> None:
            data = parse(AutomationsChanged, event.data)
            if data is not None:
                programs.forget(data.workspace)

        news.on(AUTOMATION_EVENT_EMITTED, self._on_wait_event)
        news.on(AUTOMATIONS_CHANGED, automations_changed)
        news.on_reconnect(programs.forget_all)
        self.service = AutomationService(
            app.state.database,
            programs,
            source=self.settings.source,
            hub=EventHub(),
            # ``global.apiUrl``: where callers reach this runtime (as for webhooks).
            api_url=self.settings.hooks_public_url or self.settings.runtime_url,
        )
        self.registry = RegistryClient(self.settings)
        self.installer = InstallerClient(self.settings)
        self.tracker = InstanceTracker(self.service, self.registry, self.installer, box, news)
        context = SLOT.of(app)
        context.automations = self.service
        components.service = self.service
        context.registry = self.registry
        lifecycle = app.state.lifecycle

        async def after_migrations(work: Callable[[], Awaitable[None]]) -> None:
            await lifecycle.migrated.wait()
            await work()

        service = self.service
        lifecycle.tasks.append(
            asyncio.create_task(
                after_migrations(lambda: run_schedules(service)), name="automation-schedules"
            )
        )

    async def aclose(self) -> None:
        components.service = None
        if self.service is not None:
            await self.service.aclose()
        for client in (self.registry, self.installer):
            if client is not None:
                await client.close()
