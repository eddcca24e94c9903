"""Bus diagnostics, present in every service: a ping sent through one service's outbox and
recorded by every service that receives it.

``modyard ping`` uses this to prove the whole event path (transaction → outbox → relay → exchange
→ each service's queue → idempotent consumer → its database) end to end on a live cluster.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.api_schemas import PingReceipt, PingReceipts, PingSent
from modyard.common.auth import Principal, Role, require_roles
from modyard.common.bus.consumer import EventSubscription
from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.common.bus.outbox import record_event
from modyard.common.db.messaging_tables import diagnostic_ping_receipts
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.common.settings import ServiceSettings
from modyard.contracts.events import parse, payload
from modyard.contracts.events.diagnostics import (
    PING_PATTERN,
    DiagnosticPing,
    ping_type,
)


async def send_ping(session: AsyncSession, settings: ServiceSettings) -> PingSent:
    ping_id = uuid.uuid4().hex
    event = new_event(
        source=settings.source,
        type=ping_type(settings.service_name),
        subject=ping_id,
        data=payload(DiagnosticPing(ping_id=ping_id, sent_by=settings.service_name)),
    )
    await record_event(session, event)
    return PingSent(ping_id=ping_id, event_id=event.id, event_type=event.type)


async def list_receipts(session: AsyncSession, ping_id: str) -> list[PingReceipt]:
    rows = await session.execute(
        select(
            diagnostic_ping_receipts.c.event_id,
            diagnostic_ping_receipts.c.sent_by,
            diagnostic_ping_receipts.c.received_at,
        )
        .where(diagnostic_ping_receipts.c.ping_id == ping_id)
        .order_by(diagnostic_ping_receipts.c.id)
    )
    return [PingReceipt.model_validate(row, from_attributes=True) for row in rows]


async def record_ping(session: AsyncSession, event: CloudEvent) -> None:
    # A ping of another shape is still recorded (under its subject and source): it is a test of
    # the path, not of the payload.
    data = parse(DiagnosticPing, event.data)
    await session.execute(
        insert(diagnostic_ping_receipts).values(
            ping_id=(data.ping_id if data else event.subject or "")[:64],
            event_id=event.id,
            sent_by=(data.sent_by if data else event.source)[:255],
        )
    )


ping_subscription = EventSubscription(
    name="diagnostics", patterns=[PING_PATTERN], handler=record_ping
)

router = APIRouter(prefix="/v1/diagnostics", tags=["diagnostics"], responses=PROBLEM_RESPONSES)
OperatorOrService = Annotated[Principal, Depends(require_roles(Role.operator, Role.service))]


@router.post("/pings", status_code=status.HTTP_202_ACCEPTED, response_model=PingSent)
async def create_ping(request: Request, session: DbSession, _: OperatorOrService) -> PingSent:
    """Send a ping event through this service's outbox to every service."""
    return await send_ping(session, request.app.state.settings)


@router.get("/pings/{ping_id}", response_model=PingReceipts)
async def get_ping(
    request: Request,
    session: DbSession,
    _: OperatorOrService,
    ping_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
) -> PingReceipts:
    """The receipts of a ping in this service: one per event handled (so exactly one when healthy)."""
    return PingReceipts(
        ping_id=ping_id,
        service=request.app.state.settings.service_name,
        receipts=await list_receipts(session, ping_id),
    )
