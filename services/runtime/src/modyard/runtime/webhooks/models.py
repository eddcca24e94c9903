"""Tables of system webhooks: the subscriptions and every delivery with its outcome."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from modyard.runtime.models import Base


class DeliveryStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class SystemWebhook(Base):
    """An operator's subscription: POST these events to this URL, signed with this secret."""

    __tablename__ = "system_webhooks"
    # Server-set columns come back with the INSERT, so reading them needs no lazy load.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read once by SQLAlchemy

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(String(2048))
    #: Event names, or ``*`` for every event.
    events: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    #: The HMAC key, encrypted with the runtime's secret keys (a Fernet token): signing needs it
    #: in clear, a database dump must not. Never returned by the API.
    secret: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDelivery(Base):
    """One event for one webhook, from enqueueing through its attempts to its outcome."""

    __tablename__ = "webhook_deliveries"
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 - read once by SQLAlchemy
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        # The deliverer's scan: due pending rows.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The API's listing: a webhook's deliveries, newest first.
        Index("ix_webhook_deliveries_webhook_id_created_at", "webhook_id", "created_at", "id"),
        # Retention cleanup of finished deliveries.
        Index("ix_webhook_deliveries_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=func.gen_random_uuid(),
    )
    webhook_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("system_webhooks.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(64))
    #: The payload's ``id``: shared by every webhook's delivery of one event.
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(
        String(16), default=DeliveryStatus.pending.value, server_default=text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: One entry per attempt: ``{attempt, at, status_code, error, duration_ms, retry_at}``.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: W3C ``traceparent``/``tracestate`` of the work that enqueued it (tracing on): the delivery
    #: continues that trace although the deliverer sends it later, from a loop of its own.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)
