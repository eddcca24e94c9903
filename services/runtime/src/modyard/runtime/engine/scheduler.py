"""Polling and schedule triggers.

When a flow starts, each of its polling triggers (a module component with role ``trigger``; of
Appmixer's, only ``tick: true`` ones: :func:`polled`) and ``core.schedule`` nodes gets a :class:`~modyard.runtime.models.TriggerState` row due now. The
scheduler takes due rows with ``FOR UPDATE SKIP LOCKED`` (so replicas share them), runs the trigger
and sends its outputs into the flow. A polling trigger whose component fails keeps polling: its
state turns ``failing`` (one ``trigger.failing`` webhook) and back to ``ok`` on the first success
(one ``trigger.recovered``), as Appmixer's triggers do when their module is removed and reinstalled.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from croniter import croniter
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.connection import Bus
from modyard.common.db.database import Database
from modyard.runtime import installed_components
from modyard.runtime.components.base import ComponentError
from modyard.runtime.engine.dispatch import send
from modyard.runtime.engine.flow_cache import FlowCache, RunnableFlow
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.executors import ModuleExecutors
from modyard.runtime.flows.definition import FlowDefinition
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.models import Flow, InstalledComponent, TriggerState
from modyard.runtime.webhooks import payloads
from modyard.runtime.webhooks.service import notify

log = structlog.get_logger(__name__)

DEFAULT_POLLING_SECONDS = 60
BATCH = 50


def next_cron(expression: str, after: datetime) -> datetime:
    value: datetime = croniter(expression, after).get_next(datetime)
    return value


def polled(installed: InstalledComponent) -> bool:
    """Whether the scheduler calls the trigger's ``tick``: a module component with role
    ``trigger`` (every ``polling_interval_seconds``, by default 60), except an Appmixer (``js``)
    one without ``tick: true`` (no ``polling_interval_seconds``). Appmixer ticks only those:
    its Timer, Scheduler and OnStart start flows from ``start()`` and their timers, webhook
    triggers from their requests, and none of them exports ``tick()`` (component.json
    ``tick``: "the component's tick() method is called at the polling interval")."""
    if installed.role != "trigger":
        return False
    return installed.executor != "js" or bool(installed.spec.get("polling_interval_seconds"))


async def schedule_flow_triggers(session: AsyncSession, flow: Flow) -> int:
    """(Re)create the trigger states of a flow that starts; returns how many it has."""
    await session.execute(delete(TriggerState).where(TriggerState.flow_id == flow.id))
    definition = FlowDefinition.model_validate(flow.definition)
    now = datetime.now(UTC)
    count = 0
    for node_id, node in definition.nodes.items():
        due: datetime | None = None
        if node.component == "core.schedule":
            due = next_cron(str(node.properties["cron"]), now)
        elif not node.component.startswith("core."):
            try:
                installed = await installed_components.find(session, flow.workspace, node.component)
            except installed_components.AmbiguousComponent:
                installed = None  # validation refuses the flow before it starts
            if installed is not None and polled(installed):
                due = now
        if due is not None:
            session.add(
                TriggerState(
                    flow_id=flow.id, node_id=node_id, status="ok", next_run_at=due, state={}
                )
            )
            count += 1
    await session.flush()
    return count


class TriggerScheduler:
    def __init__(
        self,
        database: Database,
        bus: Bus,
        flows: FlowCache,
        installer: InstallerClient,
        executors: ModuleExecutors,
        *,
        tick_seconds: float = 0.5,
    ) -> None:
        self._database = database
        self._bus = bus
        self._flows = flows
        self._installer = installer
        self._executors = executors
        self._tick = tick_seconds

    async def run(self) -> None:
        while True:
            try:
                ran = await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("trigger_scheduler_failed", error=str(exc)[:300])
                ran = 0
            if ran < BATCH:
                await asyncio.sleep(self._tick)

    async def run_due(self) -> int:
        async with self._database.transaction() as session:
            due = (
                await session.scalars(
                    select(TriggerState)
                    .where(TriggerState.next_run_at <= datetime.now(UTC))
                    .order_by(TriggerState.next_run_at)
                    .limit(BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for state in due:
                flow = await self._flows.get(state.flow_id)
                if (
                    flow is None
                    or flow.status != "running"
                    or state.node_id not in flow.definition.nodes
                ):
                    await session.delete(state)
                    continue
                await self._fire(session, flow, state)
        return len(due)

    async def _fire(self, session: AsyncSession, flow: RunnableFlow, state: TriggerState) -> None:
        node = flow.definition.nodes[state.node_id]
        now = datetime.now(UTC)
        state.last_run_at = now
        if node.component == "core.schedule":
            state.next_run_at = next_cron(str(node.properties["cron"]), now)
            payload = node.properties.get("payload", {"fired_at": now.isoformat()})
            await self._forward(flow, state.node_id, {"out": [payload]})
            return
        try:
            installed = await installed_components.find(session, flow.workspace, node.component)
        except installed_components.AmbiguousComponent:
            installed = None
        interval = int(
            (installed.spec.get("polling_interval_seconds") if installed else None)
            or DEFAULT_POLLING_SECONDS
        )
        state.next_run_at = now + timedelta(seconds=interval)
        try:
            if installed is None or not installed.present:
                raise ComponentError(
                    f"{node.component!r} is not installed (was its module removed?)", retryable=True
                )
            config = await self._installer.effective_config(flow.workspace, installed.slug)
            outputs = await self._executors.call(
                installed,
                {
                    "message_id": uuid.uuid4().hex,
                    "workspace": flow.workspace,
                    "flow_id": str(flow.id),
                    "node_id": state.node_id,
                    "installation": installed.slug,
                    "module": installed.module,
                    "version": installed.version,
                    "component": installed.component,
                    "port": "tick",
                    "payload": None,
                    "properties": node.properties,
                    "config": config,
                    "state": state.state,
                },
            )
        except ComponentError as error:
            await self._failing(session, flow, state, node.component, error)
            return
        if state.status == "failing":
            await notify(
                session, payloads.TRIGGER_RECOVERED, self._trigger_data(flow, state, node.component)
            )
            log.info("trigger_recovered", flow_id=str(flow.id), node=state.node_id)
        state.status, state.failing_since, state.last_error = "ok", None, None
        await self._forward(flow, state.node_id, outputs)

    async def _failing(
        self,
        session: AsyncSession,
        flow: RunnableFlow,
        state: TriggerState,
        component: str,
        error: ComponentError,
    ) -> None:
        state.last_error = error.message
        if state.status != "failing":
            state.status, state.failing_since = "failing", datetime.now(UTC)
            data = self._trigger_data(flow, state, component)
            data["error"] = error.to_json()
            await notify(session, payloads.TRIGGER_FAILING, data)
            log.warning(
                "trigger_failing", flow_id=str(flow.id), node=state.node_id, error=error.message
            )

    @staticmethod
    def _trigger_data(flow: RunnableFlow, state: TriggerState, component: str) -> dict[str, Any]:
        return {
            "workspace": flow.workspace,
            "flow": {"id": str(flow.id), "name": flow.name},
            "node": state.node_id,
            "component": component,
            "since": (state.failing_since or datetime.now(UTC)).isoformat(),
        }

    async def _forward(
        self, flow: RunnableFlow, node_id: str, outputs: dict[str, list[Any]]
    ) -> None:
        origin = WorkMessage(workspace=flow.workspace, flow_id=str(flow.id), node_id=node_id)
        for port, values in outputs.items():
            for index, connection in flow.definition.outgoing(node_id, port):
                for position, payload in enumerate(values):
                    await send(
                        self._bus,
                        WorkMessage(
                            message_id=origin.child_id(index, position),
                            workspace=flow.workspace,
                            flow_id=str(flow.id),
                            node_id=connection.target,
                            port=connection.target_port,
                            payload=payload,
                        ),
                    )


async def drop_flow_triggers(session: AsyncSession, flow_id: uuid.UUID) -> None:
    await session.execute(delete(TriggerState).where(TriggerState.flow_id == flow_id))
