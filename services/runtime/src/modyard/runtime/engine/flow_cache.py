"""Flows as the worker needs them, cached briefly: one database read per flow per second, not
per message. A change's ``flow.changed`` event drops the copy in every runtime process once the
change committed (replica_news.py); ``ttl`` bounds what no event announced (an event missed while
the broker connection was down is covered by dropping every copy on reconnect).

Validated definitions are also kept by flow id and ``revision`` (bumped on every change of a flow,
flows/service.py), for the worker and for the webhook route, which reads a flow's status on every
request but validates its definition only when the revision is new to this process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from modyard.common.db.database import Database
from modyard.common.single_flight import ExpiringCopies
from modyard.runtime.failures import RetryPolicy
from modyard.runtime.flows.definition import FlowDefinition
from modyard.runtime.models import Flow

#: Validated definitions kept per process; the oldest goes first beyond this many flows.
MAX_DEFINITIONS = 1024


@dataclass(frozen=True)
class RunnableFlow:
    id: uuid.UUID
    workspace: str
    name: str
    owner: str
    status: str
    definition: FlowDefinition
    policy: RetryPolicy


class FlowCache:
    def __init__(self, database: Database, policy: RetryPolicy, ttl: float = 1.0) -> None:
        self._database = database
        self._policy = policy
        #: One read per flow at a time: when a copy expires under load, the prefetch's worth of
        #: messages waiting for it share one read instead of each starting its own. A read in
        #: flight when the flow changes answers its waiters but is not kept.
        self._copies: ExpiringCopies[uuid.UUID, RunnableFlow | None] = ExpiringCopies(
            "flow", self._read, ttl
        )
        #: flow id -> (revision, its definition validated): one entry per flow, the latest seen.
        self._definitions: dict[uuid.UUID, tuple[int, FlowDefinition]] = {}

    def cached_definition(self, flow_id: uuid.UUID, revision: int) -> FlowDefinition | None:
        """The flow's definition at ``revision`` if it was validated before, else None."""
        known = self._definitions.get(flow_id)
        return known[1] if known is not None and known[0] == revision else None

    def definition(
        self, flow_id: uuid.UUID, revision: int, raw: dict[str, object]
    ) -> FlowDefinition:
        """``raw`` (the flow's definition column at ``revision``) validated, once per revision.
        The revision is the key, not a time: an edited flow is never served its old definition."""
        cached = self.cached_definition(flow_id, revision)
        if cached is not None:
            return cached
        definition = FlowDefinition.model_validate(raw)
        self._definitions.pop(flow_id, None)  # re-inserted last: the dict's order is its age
        self._definitions[flow_id] = (revision, definition)
        if len(self._definitions) > MAX_DEFINITIONS:
            del self._definitions[next(iter(self._definitions))]
        return definition

    def forget(self, flow_id: uuid.UUID) -> None:
        self._copies.forget(flow_id)  # callers from now on read afresh

    def forget_all(self) -> None:
        """Every copy (validated definitions stay: they are keyed by revision, not by time)."""
        self._copies.forget_all()

    async def get(self, flow_id: uuid.UUID) -> RunnableFlow | None:
        return await self._copies.get(flow_id)

    async def _read(self, flow_id: uuid.UUID) -> RunnableFlow | None:
        async with self._database.transaction() as session:
            flow = await session.get(Flow, flow_id)
            return None if flow is None else self._runnable(flow)

    def _runnable(self, flow: Flow) -> RunnableFlow:
        definition = self.definition(flow.id, flow.revision, flow.definition)
        return RunnableFlow(
            id=flow.id,
            workspace=flow.workspace,
            name=flow.name,
            owner=flow.owner,
            status=flow.status,
            definition=definition,
            policy=self._policy.merge(definition.retry_policy),
        )
