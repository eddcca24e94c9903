"""Module versions made ready before their first call: installed when a workspace installs or
upgrades to them, and a child started for each (the warm pool).

The trigger is the installer's ``installation.created``/``installation.upgraded`` events, not the
registry's ``published``: only versions a workspace installed will run, so a registry full of
versions nobody installs costs no npm install and no disk here; the event names the exact version
(and its components, so modules without a ``js`` one are skipped); and it arrives through the
runner's idempotent event queue (at least once, deduplicated). The install runs in the background,
never in the event's transaction (npm may take minutes); one that fails is logged and retried by
the first call, which reports npm's error as before.

Warm pool: once installed, the version's child is started and left idle, so the first message
does not pay for Node's start (it is recycled after ``IDLE_SECONDS`` like any idle child, and the
next call then pays the cold start again, measured at ~70-90 ms).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.installer import (
    INSTALLATION_CREATED,
    INSTALLATION_UPGRADED,
    InstallationEvent,
)
from modyard.jsrunner.modules import ModuleUnavailable
from modyard.jsrunner.runner import JsRunner
from modyard.jsrunner.sandbox import SandboxFailure
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)

#: The installer's events after which a module version runs in a workspace.
INSTALLED: Final = (INSTALLATION_CREATED, INSTALLATION_UPGRADED)


def has_js_components(data: InstallationEvent) -> bool:
    return any(component.executor == "js" for component in data.components)


class AheadOfCalls:
    def __init__(self, settings: JsRunnerSettings, runner: Callable[[], JsRunner | None]) -> None:
        self._settings = settings
        self._runner = runner
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set once the base layer is ready: a child started before would miss it for its life.
        self.ready = asyncio.Event()
        #: Versions made ready (or being made ready) by this process.
        self.prepared: set[tuple[str, str]] = set()

    def subscription(self) -> EventSubscription:
        return EventSubscription("js-modules-installed", list(INSTALLED), self.on_installed)

    async def on_installed(self, _session: AsyncSession, event: CloudEvent) -> None:
        data = parse(InstallationEvent, event.data)
        if data is None or not has_js_components(data):
            return
        name, version = data.module, data.version
        if not self._settings.install_on_events or (name, version) in self.prepared:
            return
        self.prepared.add((name, version))
        task = asyncio.create_task(self.prepare(name, version), name=f"js-ahead-{name}@{version}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def prepare(self, name: str, version: str) -> None:
        await self.ready.wait()
        runner = self._runner()
        if runner is None:
            return
        try:
            module = await runner.store.get(name, version)
            if self._settings.warm_children:
                await runner.pool.child(runner.spec(module))
        except (ModuleUnavailable, SandboxFailure) as exc:
            # The first call tries again and reports it; nothing half-installed is left.
            self.prepared.discard((name, version))
            log.warning("js_module_not_prepared", module=name, version=version, error=exc.message)
            return
        log.info(
            "js_module_prepared", module=name, version=version, warm=self._settings.warm_children
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
