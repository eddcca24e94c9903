"""The dead-letter store: listing, reading, deleting and retrying unprocessed messages."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.connection import Bus
from modyard.common.errors import Conflict, NotFound
from modyard.common.observability import tracing
from modyard.common.observability.metrics import UNPROCESSED_MESSAGES
from modyard.runtime.engine.dispatch import send
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.models import Flow, UnprocessedMessage

_UNSET: Any = object()


@dataclass(frozen=True)
class Filter:
    workspace: str | None = None
    flow_id: uuid.UUID | None = None
    node_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[tuple[UnprocessedMessage]]) -> Select[tuple[UnprocessedMessage]]:
        table = UnprocessedMessage
        if self.workspace is not None:
            query = query.where(table.workspace == self.workspace)
        if self.flow_id is not None:
            query = query.where(table.flow_id == self.flow_id)
        if self.node_id is not None:
            query = query.where(table.node_id == self.node_id)
        if self.since is not None:
            query = query.where(table.created_at >= self.since)
        if self.until is not None:
            query = query.where(table.created_at < self.until)
        return query


async def list_page(
    session: AsyncSession, where: Filter, *, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[UnprocessedMessage]:
    query = where.apply(select(UnprocessedMessage)).order_by(
        UnprocessedMessage.created_at, UnprocessedMessage.id
    )
    if after is not None:
        query = query.where((UnprocessedMessage.created_at, UnprocessedMessage.id) > after)  # type: ignore[operator]
    return list((await session.scalars(query.limit(limit + 1))).all())


async def get(session: AsyncSession, message_id: uuid.UUID) -> UnprocessedMessage:
    found = await session.get(UnprocessedMessage, message_id)
    if found is None:
        raise NotFound(
            f"There is no unprocessed message {message_id}; it may have been retried or deleted."
        )
    return found


async def delete_one(session: AsyncSession, message_id: uuid.UUID) -> None:
    await session.delete(await get(session, message_id))
    await session.flush()


async def delete_matching(session: AsyncSession, where: Filter) -> int:
    ids = [row.id for row in (await session.scalars(where.apply(select(UnprocessedMessage)))).all()]
    if ids:
        await session.execute(delete(UnprocessedMessage).where(UnprocessedMessage.id.in_(ids)))
    return len(ids)


async def retry(
    session: AsyncSession, bus: Bus, stored: UnprocessedMessage, payload: Any = _UNSET
) -> WorkMessage:
    """Put the message back into its flow at the node that failed, with a fresh attempt count.

    The message gets a new id, so that a node which succeeded with it before (it never did, or it
    would not be here) cannot be mistaken for this run. It is sent before the row is deleted: if the
    send fails the message stays here; if the commit fails it may run once more, never zero times.
    """
    flow = await session.get(Flow, stored.flow_id)
    if flow is None:
        raise Conflict(
            "Its flow was deleted; the message can only be deleted.", slug="flow-deleted"
        )
    if flow.status != "running":
        raise Conflict(
            f"Start flow {flow.name!r} first; retried messages need a running flow.",
            slug="flow-not-running",
        )
    message = WorkMessage(
        workspace=stored.workspace,
        flow_id=str(stored.flow_id),
        node_id=stored.node_id,
        port=stored.port,
        payload=stored.payload if payload is _UNSET else payload,
    )
    # A new run, in the trace of the request that retries it, linked to the attempt that gave up.
    link = tracing.link_to(stored.trace_context)
    with tracing.span(
        "retry unprocessed message",
        attributes={
            tracing.WORKSPACE: stored.workspace,
            tracing.FLOW: str(stored.flow_id),
            tracing.NODE: stored.node_id,
        },
        links=[link] if link is not None else None,
    ):
        await send(bus, message)
    await session.delete(stored)
    await session.flush()
    return message


async def retry_matching(
    session: AsyncSession, bus: Bus, where: Filter, limit: int
) -> Sequence[uuid.UUID]:
    stored = (await session.scalars(where.apply(select(UnprocessedMessage)).limit(limit))).all()
    retried = []
    for item in stored:
        await retry(session, bus, item)
        retried.append(item.id)
    return retried


#: Why a message ends in the store (``UnprocessedMessage.reason``).
REASONS = ("not_retryable", "retries_exhausted", "flow_stopped", "node_missing")


def gauge_refresher(service: str) -> Callable[[AsyncSession], Awaitable[None]]:
    """Sets ``modyard_runtime_unprocessed_messages`` from the store (for ``refresh_state_gauges``)."""

    async def refresh(session: AsyncSession) -> None:
        counts = dict(
            (
                await session.execute(
                    select(UnprocessedMessage.reason, func.count()).group_by(
                        UnprocessedMessage.reason
                    )
                )
            )
            .tuples()
            .all()
        )
        for reason in {*REASONS, *counts}:
            UNPROCESSED_MESSAGES.labels(service, reason).set(counts.get(reason, 0))

    return refresh
