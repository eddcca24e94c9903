"""The node worker: takes a message off the work queue, runs its node, sends the outputs on.

At-least-once, without running a node twice for one message: a message is acknowledged only after
its outputs are published with confirms, and a node's success is recorded (with its outputs) under
the message id before they are published. A redelivered message whose node already succeeded is
answered from that record; its children get the same ids as the first time (they are derived from
the parent's), so they are deduplicated the same way downstream.

A failure is retried through the delay tiers while the policy allows it (never a sleep here), then
the message becomes an unprocessed message and the system webhooks are told.

Chaining: a child bound for a core component (run in this process) is handled at once, inside the
delivery of its parent, instead of going through the broker: the parent is acknowledged only
after its chained descendants are recorded and their own outputs sent on. Should the process die
in between, the parent comes back and the ledger answers every node that already ran, as for any
redelivery; the children's ids are the same ones a published message would have carried. A failed
chained node is retried through the delay tiers like any other, and ``work_chain_limit`` bounds
how many nodes one delivery runs (the rest are published), so a long or wide flow still shares
the worker with other runs.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.common.bus.connection import Bus, BusUnavailable
from modyard.common.bus.envelope import new_event
from modyard.common.bus.outbox import record_event
from modyard.common.bus.topology import DEAD_LETTER_EXCHANGE
from modyard.common.db.availability import is_database_unavailable
from modyard.common.db.database import Database
from modyard.common.db.raw_connections import CONNECTION_ERRORS as LEDGER_CONNECTION_ERRORS
from modyard.common.observability import flow_metrics, tracing
from modyard.common.request_context import bound_context
from modyard.contracts.events import payload as event_payload
from modyard.contracts.events.runtime import FLOW_EMITTED, FlowEmitted
from modyard.runtime import failures, installed_components
from modyard.runtime.automations.components import run_automation_node
from modyard.runtime.components.base import ComponentError, Delay, ExecutionContext, Outputs
from modyard.runtime.components.core import core_component
from modyard.runtime.engine.dispatch import send
from modyard.runtime.engine.flow_cache import FlowCache, RunnableFlow
from modyard.runtime.engine.ledger import ExecutionLedger, Notice, Recorded
from modyard.runtime.engine.messages import FailedAttempt, WorkMessage
from modyard.runtime.engine.topology import WORK_DEAD_LETTER_QUEUE, WORK_QUEUE, delay_queue
from modyard.runtime.executors import ModuleExecutors, carries_config
from modyard.runtime.failures import DELAY_TIERS, classify_exception
from modyard.runtime.flows.events import EventGuard
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.models import NodeExecution, NodeLog, UnprocessedMessage
from modyard.runtime.webhooks import payloads
from modyard.runtime.webhooks.service import build_engine_payload, notify, wake_deliverer

log = structlog.get_logger(__name__)


@functools.lru_cache(maxsize=4096)
def _flow_uuid(flow_id: str) -> uuid.UUID:
    """The message's flow id parsed, once per flow: a message is parsed in ``_on_message`` and in
    each node it reaches (1 % of the runtime's samples in bench runtime's clean run). A malformed
    id raises ``ValueError`` every time (exceptions are not cached)."""
    return uuid.UUID(flow_id)


def _not_the_message(exc: BaseException) -> bool:
    """The broker or the database is away (any database error counts: a statement cut by a
    restart is not always flagged as a lost connection). Such a message goes back to the queue;
    raising instead would leave it unacknowledged, stuck until the channel closes."""
    return isinstance(
        exc, (BusUnavailable, DBAPIError, *LEDGER_CONNECTION_ERRORS)
    ) or is_database_unavailable(exc)


#: Why an execution whose outputs, log lines or payload PostgreSQL refuses cannot run (no retry
#: would change the data).
UNSTORABLE = (
    "the node's data holds text PostgreSQL cannot store (most likely a NUL character, \\u0000, "
    "in a string); remove it where the data comes from"
)


def _unstorable(exc: BaseException) -> bool:
    """PostgreSQL refused the data itself (SQLSTATE class 22, e.g. a NUL character in jsonb):
    the message's fault, never "the database is away" (a retry would fail the same way)."""
    if isinstance(exc, asyncpg.exceptions.DataError):
        return True
    return isinstance(exc, DBAPIError) and str(getattr(exc.orig, "sqlstate", "")).startswith("22")


_FAILURE_KINDS = frozenset(
    {
        failures.KIND_HTTP_STATUS,
        failures.KIND_TIMEOUT,
        failures.KIND_CONNECTION,
        failures.KIND_DNS,
        failures.KIND_PROTOCOL,
        failures.KIND_INVALID_REQUEST,
        failures.KIND_VALIDATION,
        failures.KIND_CONFIGURATION,
        failures.KIND_UNKNOWN,
    }
)


def _failure_class(error: ComponentError) -> str:
    """The metrics' ``class`` label: the classified kind (timeout, connection, http_status…)
    when there is one, else whether it is retried. A bounded set: never the message."""
    kind = error.details.get("kind") if isinstance(error.details, dict) else None
    if kind in _FAILURE_KINDS:
        return str(kind)
    return "retryable" if error.retryable else "not_retryable"


class NodeWorker:
    def __init__(
        self,
        database: Database,
        bus: Bus,
        flows: FlowCache,
        installer: InstallerClient,
        executors: ModuleExecutors,
        ledger: ExecutionLedger,
        *,
        source: str,
        events: EventGuard | None = None,
        chain_limit: int = 0,
    ) -> None:
        #: How many nodes one delivery may run in process past its own (0: every node a message).
        self._chain_limit = chain_limit
        self._events = events or EventGuard(max_depth=16, rate_per_second=100.0, burst=500)
        self._ledger = ledger
        self._database = database
        self._bus = bus
        self._flows = flows
        self._installer = installer
        self._executors = executors
        self._source = source
        # Depth and consumers of the work queue, its dead letters and the delay tiers (metrics).
        bus.observe_queue(
            WORK_QUEUE, WORK_DEAD_LETTER_QUEUE, *(delay_queue(seconds) for seconds in DELAY_TIERS)
        )

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        if tracing.ENABLED:
            # Continues the trace of whoever sent it: a webhook, the previous node, or this node's
            # earlier attempt (the delay tiers keep the headers when they dead-letter it back).
            with tracing.consuming(
                WORK_QUEUE,
                incoming.headers,
                routing_key=incoming.routing_key or "",
                message_id=incoming.message_id,
                redelivered=bool(incoming.redelivered),
            ):
                await self._on_message(incoming)
            return
        await self._on_message(incoming)

    async def _on_message(self, incoming: AbstractIncomingMessage) -> None:
        try:
            message = WorkMessage.model_validate_json(incoming.body)
            _flow_uuid(message.flow_id)
        except ValueError as exc:  # pydantic's ValidationError is one too
            await self._dead_letter(incoming, f"not a work message: {exc}"[:500])
            return
        if tracing.recording():  # no attribute dict for a trace the sampler left out
            tracing.annotate_current(_node_attributes(message))
        with bound_context(request_id=message.message_id, correlation_id=message.correlation_id):
            try:
                await self.handle(message, _Chain(self._chain_limit))
            except Exception as exc:
                if not _not_the_message(exc):
                    raise
                # Not the message's fault: give it back after a pause instead of spinning.
                log.warning("work_message_requeued", error=str(exc)[:300])
                await asyncio.sleep(1.0)
                await incoming.nack(requeue=True)
                return
            await incoming.ack()

    async def _dead_letter(self, incoming: AbstractIncomingMessage, reason: str) -> None:
        """Keep a message that can never be handled, with why, on ``runtime.work.dead``.

        runtime.work has no dead-letter exchange (adding one would change the arguments of every
        existing queue, which the broker refuses), so the worker files the message itself before
        it acknowledges it; should the broker be away, the message goes back and waits."""
        log.error("work_message_rejected", message_id=incoming.message_id, reason=reason)
        try:
            await self._file_dead(
                incoming.body,
                message_id=incoming.message_id or uuid.uuid4().hex,
                message_type=incoming.type,
                correlation_id=incoming.correlation_id,
                content_type=incoming.content_type or "application/octet-stream",
                reason=reason,
            )
        except (BusUnavailable, OSError, ConnectionError, TimeoutError) as exc:
            log.warning("work_message_requeued", error=str(exc)[:300])
            await asyncio.sleep(1.0)
            await incoming.nack(requeue=True)
            return
        await incoming.ack()

    async def _file_dead(
        self,
        body: bytes,
        *,
        message_id: str,
        message_type: str | None,
        correlation_id: str | None,
        content_type: str,
        reason: str,
    ) -> None:
        """``body`` on ``runtime.work.dead`` as it is, with why in ``x-modyard-rejected-reason``."""
        await self._bus.publish_message(
            body,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=WORK_DEAD_LETTER_QUEUE,
            message_id=message_id,
            message_type=message_type,
            correlation_id=correlation_id,
            headers={"x-modyard-rejected-reason": reason},
            content_type=content_type,
        )

    async def handle(
        self, message: WorkMessage, chain: _Chain | None = None, *, fresh: bool = False
    ) -> None:
        """Run the message's node and send its outputs on. ``fresh``: the message was derived
        just now from outputs this delivery recorded, so the ledger cannot know it yet."""
        chain = chain or _Chain(0)
        flow = await self._flows.get(_flow_uuid(message.flow_id))
        if flow is None:
            log.info("work_message_dropped_flow_deleted", flow_id=message.flow_id)
            return
        node = flow.definition.nodes.get(message.node_id)
        if flow.status != "running" or node is None:
            reason = "flow_stopped" if node is not None else "node_missing"
            await self._store_unprocessed(flow, message, node.component if node else "?", reason)
            return
        done = None if fresh else await self._ledger.outputs(message.message_id)
        if done is not None:
            flow_metrics.node_succeeded(
                flow.workspace, message.flow_id, message.node_id, 0.0, replayed=True
            )
            await self._forward(flow, message, done, 0.0, chain, fresh=False)
            return
        effects = SideEffects(workspace=flow.workspace, depth=message.depth, guard=self._events)
        started = time.perf_counter()
        try:
            result = await self._run(flow, node.component, node.properties, message, effects)
        except ComponentError as error:
            await self._failed(flow, message, node.component, error, time.perf_counter() - started)
            return
        except Exception as exc:  # a component's bug is that component's failure, not the worker's
            classified = classify_exception(exc)
            await self._failed(
                flow, message, node.component, classified, time.perf_counter() - started
            )
            return
        flow_metrics.node_succeeded(
            flow.workspace,
            message.flow_id,
            message.node_id,
            time.perf_counter() - started,
            replayed=False,
        )
        delay = result.seconds if isinstance(result, Delay) else 0.0
        outputs = result.outputs if isinstance(result, Delay) else result
        try:
            if effects.events:
                recorded = await self._record_with_events(flow, message, outputs, effects)
            else:
                # The log lines commit with the node's success: a redelivery cannot log twice.
                recorded = await self._ledger.record(
                    message_id=message.message_id,
                    flow_id=flow.id,
                    node_id=message.node_id,
                    outputs=outputs,
                    logs=effects.logs,
                )
        except Exception as exc:
            if not _unstorable(exc):
                raise
            unstorable = ComponentError(UNSTORABLE, retryable=False)
            await self._failed(flow, message, node.component, unstorable)
            return
        await self._forward(flow, message, recorded.outputs, delay, chain, fresh=recorded.fresh)

    async def _record_with_events(
        self,
        flow: RunnableFlow,
        message: WorkMessage,
        outputs: dict[str, Any],
        effects: SideEffects,
    ) -> Recorded:
        """The same record, through the ORM session, because events go through the outbox."""
        async with self._database.transaction() as session:
            recorded = await session.scalar(
                _RECORD,
                {
                    "message_id": message.message_id,
                    "flow_id": flow.id,
                    "node_id": message.node_id,
                    "outputs": outputs,
                },
            )
            if recorded is None:  # another delivery of this message won the race: use its outputs
                stored: dict[str, Any] = (
                    await session.scalar(_EXECUTED, {"message_id": message.message_id})
                ) or {}
                return Recorded(stored, fresh=False)
            await effects.write(session, flow, message, self._source)
        return Recorded(outputs, fresh=True)

    async def _run(
        self,
        flow: RunnableFlow,
        component: str,
        properties: dict[str, Any],
        message: WorkMessage,
        effects: SideEffects,
    ) -> Outputs | Delay:
        context = ExecutionContext(
            workspace=flow.workspace,
            flow_id=str(flow.id),
            node_id=message.node_id,
            message_id=message.message_id,
            properties=properties,
            correlation_id=message.correlation_id,
            log=effects.log,
            emit=effects.emit,
        )
        if component_refs.is_core(component):
            core = core_component(component)
            if core is None:
                raise ComponentError(f"there is no core component {component!r}", retryable=False)
            return await core.run(context, message.port, message.payload)
        async with self._database.transaction() as session:
            try:
                installed = await installed_components.find(session, flow.workspace, component)
            except installed_components.AmbiguousComponent as exc:
                # Another installation made the name ambiguous after the flow started.
                raise ComponentError(str(exc), retryable=False) from exc
        if installed is None or not installed.present:
            raise ComponentError(
                f"{component!r} is not installed in {flow.workspace!r} (was its module removed?)",
                retryable=True,
            )
        if tracing.recording():  # no attribute dict for a trace the sampler left out
            tracing.annotate_current(
                {
                    tracing.MODULE: installed.module,
                    tracing.INSTALLATION: installed.slug,
                    tracing.COMPONENT: installed.component,
                }
            )
        if installed.executor == "automation":  # an app instance's automation
            return await run_automation_node(
                context, installed.slug, installed.component, message.payload
            )
        # A Slingr package's runner reads its configuration itself (executors.sealed): no fetch.
        config = (
            await self._installer.effective_config(flow.workspace, installed.slug)
            if carries_config(installed)
            else None
        )
        return await self._executors.call(
            installed,
            {
                "message_id": message.message_id,
                "workspace": flow.workspace,
                "flow_id": str(flow.id),
                "node_id": message.node_id,
                "installation": installed.slug,
                "module": installed.module,
                "version": installed.version,
                "component": installed.component,
                "port": message.port,
                "payload": message.payload,
                "correlation_id": message.correlation_id,
                "properties": properties,
                "config": config,
                # The node's account: the runner fetches its credentials from the installer
                # (they never travel in the message).
                "account": _account_of(flow, message.node_id),
            },
            # A Slingr step's sys.logs lines and triggered events, kept with its success.
            log=effects.log,
            emit=effects.emit,
        )

    async def _forward(
        self,
        flow: RunnableFlow,
        message: WorkMessage,
        outputs: dict[str, Any],
        delay: float,
        chain: _Chain,
        *,
        fresh: bool,
    ) -> None:
        # A message from before started_at existed, or the first of a run: the run starts now.
        started_at = time.time()
        children = [
            WorkMessage(
                message_id=message.child_id(index, position),
                workspace=flow.workspace,
                flow_id=str(flow.id),
                node_id=connection.target,
                port=connection.target_port,
                payload=payload,
                correlation_id=message.correlation_id,
                depth=message.depth,
                started_at=message.started_at or started_at,
            )
            for port, values in outputs.items()
            for index, connection in flow.definition.outgoing(message.node_id, port)
            for position, payload in enumerate(values)
        ]
        steps = [
            self._chained(child, chain, fresh=fresh)
            if delay == 0 and self._runs_here(flow, child) and chain.take()
            else send(self._bus, child, delay_seconds=delay)
            for child in children
        ]
        if len(steps) == 1:
            # One child (most nodes): awaited here, not wrapped in a task for gather (11 µs
            # against 2, twice per message of the benchmark's flow). What a chained child binds
            # in the context (its ids, its span) it resets on the way out.
            await steps[0]
        elif steps:
            await asyncio.gather(*steps)
        if not children:
            flow_metrics.branch_finished(
                flow.workspace, message.flow_id, message.started_at or started_at
            )

    @staticmethod
    def _runs_here(flow: RunnableFlow, child: WorkMessage) -> bool:
        """A core component runs in this process: nothing is gained by a trip through the
        broker. A module's runs elsewhere (its worker, the JS runner, a container)."""
        node = flow.definition.nodes.get(child.node_id)
        return node is not None and component_refs.is_core(node.component)

    async def _chained(self, child: WorkMessage, chain: _Chain, *, fresh: bool) -> None:
        # Its own node span below the parent's (not a CONSUMER: nothing was consumed), and its
        # own message id in the log lines.
        with (
            tracing.span(
                f"process {WORK_QUEUE}",
                attributes={**_node_attributes(child), "modyard.chained": True},
            )
            if tracing.recording()
            else nullcontext(),
            bound_context(request_id=child.message_id, correlation_id=child.correlation_id),
        ):
            await self.handle(child, chain, fresh=fresh)

    async def _failed(
        self,
        flow: RunnableFlow,
        message: WorkMessage,
        component: str,
        error: ComponentError,
        seconds: float = 0.0,
    ) -> None:
        flow_metrics.node_failed(
            flow.workspace, message.flow_id, message.node_id, seconds, _failure_class(error)
        )
        history = [
            *message.errors,
            FailedAttempt(
                attempt=message.attempt,
                at=datetime.now(UTC).isoformat(),
                message=error.message,
                retryable=error.retryable,
                status=error.status,
            ),
        ]
        # Committed before the retry is sent, as the notification of a transaction would be;
        # in the statement recording the successes in flight. The data is ours, of the
        # event's model already: serialised without validating it again.
        notice = Notice(
            payloads.COMPONENT_ERROR,
            build_engine_payload(
                payloads.COMPONENT_ERROR,
                {
                    "workspace": flow.workspace,
                    "flow": {"id": str(flow.id), "name": flow.name},
                    "node": message.node_id,
                    "component": component,
                    "error": error.to_json(),
                    "attempt": message.attempt,
                    "message_id": message.message_id,
                },
            ),
            tracing.current_traceparent() or None,
        )
        if await self._ledger.notify(notice):
            wake_deliverer(self._database.engine)
        if flow.policy.should_retry(error, message.attempt):
            retry = message.model_copy(update={"attempt": message.attempt + 1, "errors": history})
            flow_metrics.node_retried(flow.workspace, message.flow_id, message.node_id)
            await send(self._bus, retry, delay_seconds=flow.policy.delay_for(message.attempt))
            return
        reason = "retries_exhausted" if error.retryable else "not_retryable"
        await self._store_unprocessed(
            flow, message.model_copy(update={"errors": history}), component, reason
        )

    async def _store_unprocessed(
        self, flow: RunnableFlow, message: WorkMessage, component: str, reason: str
    ) -> None:
        flow_metrics.node_unprocessed(flow.workspace, message.flow_id, message.node_id, reason)
        try:
            await self._keep_unprocessed(flow, message, component, reason)
        except Exception as exc:
            if not _unstorable(exc):
                raise
            # Its payload holds text PostgreSQL cannot store: the broker keeps it instead, bytes
            # as they came, with the messages that can never be handled (runtime.work.dead).
            await self._file_dead(
                message.model_dump_json().encode(),
                message_id=message.message_id,
                message_type="modyard.runtime.work",
                correlation_id=message.correlation_id,
                content_type="application/json",
                reason=f"{reason}: {UNSTORABLE}",
            )
            log.warning(
                "message_dead_lettered",
                flow_id=str(flow.id),
                node=message.node_id,
                reason=reason,
                detail=UNSTORABLE,
            )

    async def _keep_unprocessed(
        self, flow: RunnableFlow, message: WorkMessage, component: str, reason: str
    ) -> None:
        async with self._database.transaction() as session:
            stored = await session.scalar(
                insert(UnprocessedMessage)
                .values(
                    id=uuid.uuid4(),
                    workspace=flow.workspace,
                    flow_id=flow.id,
                    node_id=message.node_id,
                    component=component,
                    message_id=message.message_id,
                    port=message.port,
                    payload=message.payload,
                    attempts=message.attempt,
                    errors=[error.model_dump() for error in message.errors],
                    reason=reason,
                    trace_context=tracing.current_traceparent() or None,
                )
                .returning(UnprocessedMessage.id)
            )
            await notify(
                session,
                payloads.MESSAGE_UNPROCESSED,
                {
                    "workspace": flow.workspace,
                    "flow": {"id": str(flow.id), "name": flow.name},
                    "node": message.node_id,
                    "component": component,
                    "unprocessed_message_id": str(stored),
                    "attempts": message.attempt,
                    "reason": reason,
                    "error": message.errors[-1].model_dump() if message.errors else None,
                },
            )
        log.warning(
            "message_unprocessed", flow_id=str(flow.id), node=message.node_id, reason=reason
        )


_NODE_EXECUTIONS = cast(Table, NodeExecution.__table__)
# Built once: Core statements with bound parameters compile once and are cached by SQLAlchemy.
_EXECUTED = select(_NODE_EXECUTIONS.c.outputs).where(
    _NODE_EXECUTIONS.c.message_id == bindparam("message_id")
)
_RECORD = (
    pg_insert(_NODE_EXECUTIONS)
    .values(
        message_id=bindparam("message_id"),
        flow_id=bindparam("flow_id"),
        node_id=bindparam("node_id"),
        outputs=bindparam("outputs", type_=JSONB),
    )
    .on_conflict_do_nothing()
    .returning(_NODE_EXECUTIONS.c.message_id)
)


def _node_attributes(message: WorkMessage) -> dict[str, Any]:
    """A node run's span attributes, delivered or chained."""
    return {
        tracing.WORKSPACE: message.workspace,
        tracing.FLOW: message.flow_id,
        tracing.NODE: message.node_id,
        "modyard.attempt": message.attempt,
    }


class _Chain:
    """What is left of one delivery's budget of nodes run in process (shared by its branches)."""

    __slots__ = ("remaining",)

    def __init__(self, limit: int) -> None:
        self.remaining = limit

    def take(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass
class SideEffects:
    """What a node asked for besides its outputs (log lines, events), kept until its success is
    recorded and then written in that same transaction."""

    logs: list[Any] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    workspace: str = ""
    #: The message's depth: its events are one deeper.
    depth: int = 0
    guard: EventGuard | None = None

    async def log(self, entry: Any) -> None:
        self.logs.append(entry)

    async def emit(self, kind: str, data: Any) -> None:
        if self.guard is not None:
            self.guard.admit(self.workspace, self.depth)
        self.events.append((kind, data))

    async def write(
        self, session: AsyncSession, flow: RunnableFlow, message: WorkMessage, source: str
    ) -> None:
        if self.logs:
            await session.execute(
                insert(NodeLog),
                [
                    {
                        "flow_id": flow.id,
                        "node_id": message.node_id,
                        "message_id": message.message_id,
                        "entry": entry,
                    }
                    for entry in self.logs
                ],
            )
        for kind, data in self.events:
            event = new_event(
                source=source,
                type=FLOW_EMITTED,
                subject=kind,
                data=event_payload(
                    FlowEmitted(
                        type=kind,
                        data=data,
                        workspace=flow.workspace,
                        flow_id=str(flow.id),
                        node=message.node_id,
                        depth=message.depth + 1,
                    )
                ),
            )
            await record_event(session, event)


def _account_of(flow: RunnableFlow, node_id: str) -> str | None:
    node = flow.definition.nodes.get(node_id)
    return node.account if node is not None else None
