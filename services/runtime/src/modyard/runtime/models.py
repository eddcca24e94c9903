"""Tables of the runtime service, in its own schema (``runtime``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modyard.common.db.base import ServiceModel, service_metadata

metadata = service_metadata()


class Base(ServiceModel, DeclarativeBase):
    metadata = metadata


class Flow(Base):
    __tablename__ = "flows"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    workspace: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    #: Whose permissions (ACL) the flow runs with: a subject, usually an email.
    owner: Mapped[str] = mapped_column(String(255))
    #: Who created the flow (the caller), and which operator named someone else its owner: an
    #: owner is never taken on a user's word (their ACL rules would be borrowed).
    created_by: Mapped[str | None] = mapped_column(String(255))
    owner_set_by: Mapped[str | None] = mapped_column(String(255))
    #: ``{"nodes": {id: {component, properties}}, "connections": [...], "retry_policy": {...}}``
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="stopped")
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Bumped on every change, so that caches and concurrent edits can tell.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class InstalledComponent(Base):
    """The runtime's view of what is installed, kept from the installer's events."""

    __tablename__ = "installed_components"
    __table_args__ = (UniqueConstraint("workspace", "slug", "component"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    workspace: Mapped[str] = mapped_column(String(64))
    slug: Mapped[str] = mapped_column(String(128))
    component: Mapped[str] = mapped_column(String(255))
    installation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    module: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    executor: Mapped[str | None] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: False once the installation is removed (kept so that flows can report what is missing).
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class NodeExecution(Base):
    """A message a node handled successfully, with the outputs it produced: a redelivered message
    is answered from here instead of running the component again."""

    __tablename__ = "node_executions"

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    node_id: Mapped[str] = mapped_column(String(128))
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    executed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class UnprocessedMessage(Base):
    """The dead-letter store: a message that failed for good, with everything needed to retry it."""

    __tablename__ = "unprocessed_messages"
    __table_args__ = (Index("ix_unprocessed_messages_flow_node", "flow_id", "node_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    workspace: Mapped[str] = mapped_column(String(64), index=True)
    flow_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    node_id: Mapped[str] = mapped_column(String(128))
    component: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str] = mapped_column(String(64))
    port: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Any] = mapped_column(JSONB, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    #: W3C ``traceparent``/``tracestate`` of the attempt that gave up (tracing on): a retry, a new
    #: trace, links back to it.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB, nullable=True)


class NodeLog(Base):
    """What ``core.log`` sinks write."""

    __tablename__ = "node_logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    flow_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    node_id: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[str] = mapped_column(String(64))
    entry: Mapped[Any] = mapped_column(JSONB, nullable=True)
    logged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TriggerState(Base):
    """Health of a flow's trigger node (polling, schedule): failing since when, and why."""

    __tablename__ = "trigger_states"

    flow_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
