"""Running automations for their triggers: direct runs, endpoints, events, schedules, flows.

A run's events are recorded in the outbox of the caller's transaction (the request's, the
consumer's) when the run ends; a ``wait`` first sends what the run emitted so far in a
transaction of its own, so that whatever answers it can see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.envelope import CloudEvent
from modyard.common.bus.outbox import record_event
from modyard.common.db.database import Database
from modyard.common.errors import Forbidden, InvalidParam, NotFound, ValidationFailed
from modyard.contracts.events import parse
from modyard.contracts.events.runtime import AutomationEventEmitted
from modyard.runtime.automations.definitions import Automation
from modyard.runtime.automations.events import (
    MAX_EVENT_DEPTH,
    EventHub,
    workspace_event,
)
from modyard.runtime.automations.fetch import Fetcher
from modyard.runtime.automations.interpreter import (
    ArgumentsInvalid,
    AutomationError,
    BudgetExceeded,
    Interpreter,
    RunResult,
)
from modyard.runtime.automations.metrics import AUTOMATION_DURATION, AUTOMATION_RUNS
from modyard.runtime.automations.program import (
    AutomationNotFound,
    PrivateAutomation,
    Program,
)
from modyard.runtime.automations.programs import ProgramCache

log = structlog.get_logger(__name__)


class _Host:
    def __init__(self, service: AutomationService, workspace: str, depth: int) -> None:
        self.service = service
        self.workspace = workspace
        self.depth = depth
        self.pending: list[CloudEvent] = []

    async def emit(
        self, program: Program, event: str, payload: Any, run: Mapping[str, Any]
    ) -> None:
        emitted_by = {
            "automation": run.get("automation"),
            "appInstance": (run.get("appInstance") or {}).get("fullSlug"),
            "correlationId": run.get("correlationId"),
        }
        self.pending.append(
            workspace_event(
                self.service.source,
                self.workspace,
                event,
                payload,
                depth=self.depth + 1,
                emitted_by=emitted_by,
                correlation_id=str(run.get("correlationId")),
            )
        )

    async def wait(
        self, program: Program, events: list[str], filters: list[dict[str, Any]], timeout: float
    ) -> dict[str, Any] | None:
        await self.flush_now()
        return await self.service.hub.wait(self.workspace, events, filters, timeout)

    async def flush_now(self) -> None:
        if self.pending:
            async with self.service.database.transaction() as session:
                await self.record(session)

    async def record(self, session: AsyncSession) -> None:
        pending, self.pending = self.pending, []
        for event in pending:
            await record_event(session, event)


def problem(exc: AutomationError) -> ValidationFailed | NotFound | Forbidden:
    """An automation's failure as the caller's 4xx."""
    if exc.status == 404:
        return NotFound(exc.message, slug="automation-not-found")
    if exc.status == 403:
        return Forbidden(exc.message, slug="automation-private")
    if exc.egress_rule is not None:
        return ValidationFailed(
            f"Automation {exc.automation!r} failed: {exc.message}",
            slug="egress-refused",
            errors=[InvalidParam(pointer=exc.pointer or "/", detail=exc.message)],
            automation=exc.automation,
            rule=exc.egress_rule,
        )
    if isinstance(exc, ArgumentsInvalid):
        return ValidationFailed(
            exc.message,
            slug="automation-arguments",
            errors=[
                InvalidParam(pointer=f"/arguments{pointer}", detail=reason)
                for pointer, reason in exc.problems
            ],
        )
    return ValidationFailed(
        f"Automation {exc.automation!r} failed: {exc.message}",
        slug="automation-budget-exceeded"
        if isinstance(exc, BudgetExceeded)
        else "automation-failed",
        errors=[InvalidParam(pointer=exc.pointer or "/", detail=exc.message)],
        automation=exc.automation,
    )


def _check_enabled(workspace: str, name: str, automation: Automation) -> None:
    if automation.disabled:
        raise NotFound(
            f"Automation {name!r} of workspace {workspace!r} is disabled (disabled: true): no "
            "trigger, endpoint or call runs it. Remove 'disabled' (or set it to false) to run it.",
            slug="automation-disabled",
        )


def _event_source(workspace: str, emitted_by: Mapping[str, Any] | None) -> dict[str, Any]:
    """An event's ``source`` with Prisme.ai's names: who emitted it (``workspaceId``,
    ``appInstanceFullSlug``, ``automationSlug``, ``correlationId``)."""
    emitted_by = emitted_by or {}
    return {
        "workspaceId": workspace,
        "appInstanceFullSlug": emitted_by.get("appInstance"),
        "automationSlug": emitted_by.get("automation"),
        "correlationId": emitted_by.get("correlationId"),
    }


@dataclass
class Target:
    program: Program
    automation: Automation
    root: Program
    #: An endpoint's path parameters (``v1/users/:id`` called as ``v1/users/42``: ``{id: 42}``).
    path_params: dict[str, str] = field(default_factory=dict)


class AutomationService:
    def __init__(
        self,
        database: Database,
        programs: ProgramCache,
        *,
        source: str,
        hub: EventHub,
        api_url: str | None = None,
    ) -> None:
        self.database = database
        self.programs = programs
        self.source = source
        self.hub = hub
        self.api_url = api_url
        self.fetcher = Fetcher()

    async def aclose(self) -> None:
        await self.fetcher.aclose()

    async def target(self, workspace: str, name: str) -> Target:
        """Automation ``name`` as the workspace itself may call it (``toolbox.execute`` too)."""
        root = await self.programs.get(workspace)
        try:
            program, automation = root.find(name)
        except PrivateAutomation as exc:
            raise Forbidden(str(exc), slug="automation-private") from None
        except AutomationNotFound:
            raise NotFound(
                f"Workspace {workspace!r} has no automation {name!r} (an app instance's are "
                "named <instance>.<automation>).",
                slug="automation-not-found",
            ) from None
        _check_enabled(workspace, name, automation)
        return Target(program, automation, root)

    async def endpoint(self, workspace: str, name: str) -> Target:
        root = await self.programs.get(workspace)
        found = root.endpoint(name)
        if found is None:
            raise NotFound(
                f"Workspace {workspace!r} serves no endpoint {name!r}: an automation needs "
                "'when: {endpoint: true}' (an app instance's are <instance>.<automation>).",
                slug="endpoint-not-found",
            )
        _check_enabled(workspace, name, found[1])
        return Target(found[0], found[1], root, found[2])

    async def run(
        self,
        session: AsyncSession,
        workspace: str,
        target: Target,
        *,
        arguments: Mapping[str, Any] | None = None,
        payload: Any = None,
        body: Any = None,
        user: Any = None,
        trigger: Mapping[str, Any],
        depth: int = 0,
        correlation_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run and record its events in ``session``; failures are raised as 4xx problems.
        ``inputs``: the trigger's (``query``, ``headers``, ``method``, ``pathParams``,
        ``source``), as Prisme.ai gives them to the automation it starts."""
        host = _Host(self, workspace, depth)
        kind = str(trigger.get("type", "direct"))
        try:
            result = await Interpreter(host, self.fetcher, api_url=self.api_url).run(
                target.program,
                target.automation,
                arguments=arguments,
                payload=payload,
                body=body,
                user=user,
                trigger=trigger,
                correlation_id=correlation_id,
                secrets_from=target.root,
                inputs=inputs,
            )
        except AutomationError as exc:
            AUTOMATION_RUNS.labels(kind, "failed").inc()
            await host.record(session)  # what it emitted before failing did happen
            raise problem(exc) from None
        AUTOMATION_RUNS.labels(kind, "ok").inc()
        AUTOMATION_DURATION.labels(kind).observe(result.duration_ms / 1000)
        await host.record(session)
        return result

    async def on_event(self, session: AsyncSession, event: CloudEvent) -> None:
        """An emitted event: run the automations listening to it (one replica does; every
        replica's waits hear it through its own queue, see ``wiring``)."""
        data = parse(AutomationEventEmitted, event.data)
        if data is None:
            return
        if data.depth > MAX_EVENT_DEPTH:
            log.warning(
                "automation.event_chain_too_deep", workspace=data.workspace, event=data.type
            )
            return
        await self.deliver(
            session,
            data.workspace,
            data.type,
            data.payload,
            depth=data.depth,
            event_id=event.id,
            correlation_id=event.correlationid,
            source=data.source,
        )

    async def deliver(
        self,
        session: AsyncSession,
        workspace: str,
        name: str,
        payload: Any,
        *,
        root: Program | None = None,
        within: Program | None = None,
        depth: int = 0,
        event_id: str | None = None,
        correlation_id: str | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> int:
        """Run the automations listening to ``name`` (a full name); how many ran.

        ``root`` is the workspace's program to use (default: the current one), ``within`` the
        part of it whose listeners run (an uninstalled instance hears its last event alone).
        """
        root = root or await self.programs.get(workspace, session)
        ran = 0
        for program, automation in list((within or root).listeners(name)):
            prefix = ".".join(program.path)
            seen_as = name.removeprefix(prefix + ".") if prefix else name
            try:
                await self.run(
                    session,
                    workspace,
                    Target(program, automation, root),
                    payload=payload,
                    trigger={"type": "event", "event": seen_as, "id": event_id},
                    depth=depth,
                    correlation_id=correlation_id,
                    inputs={"source": _event_source(workspace, source)},
                )
                ran += 1
            except (ValidationFailed, NotFound, Forbidden) as exc:
                # One listener failing must not redeliver the event to the others.
                log.warning(
                    "automation.event_run_failed",
                    workspace=workspace,
                    automation=automation.slug,
                    instance=prefix or None,
                    event=name,
                    error=exc.detail,
                )
        return ran
