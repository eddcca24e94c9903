"""Tables of the appcell-gateway service, in its own schema (``appcell_gateway``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modyard.common.db.base import ServiceModel, service_metadata

metadata = service_metadata()


class Base(ServiceModel, DeclarativeBase):
    metadata = metadata


class Cell(Base):
    """An installed AppCell module as the gateway serves it.

    ``catalogue`` is what the registry's manifest and bundled files say (plugins, actions,
    resources, settings, ui, and the schema documents by archive path), written once per
    install or upgrade; each process compiles it once per ``revision``.
    """

    __tablename__ = "cells"

    installation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workspace: Mapped[str] = mapped_column(String(64))
    slug: Mapped[str] = mapped_column(String(128))
    module: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    #: ``ready`` | ``invalid`` (the module cannot be served; ``error`` says why) | ``removed``.
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    catalogue: Mapped[dict[str, Any]] = mapped_column(JSONB)
    queue: Mapped[str] = mapped_column(String(255))
    amqp_username: Mapped[str | None] = mapped_column(String(255))
    #: The cell's broker password, Fernet-encrypted (``secret_keys``).
    amqp_password: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (Index("ix_cells_workspace_slug", "workspace", "slug"),)


class RequestRecord(Base):
    """One request through the pipeline, written in batches after it was answered."""

    __tablename__ = "requests"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    correlation_id: Mapped[str] = mapped_column(String(128))
    installation_id: Mapped[uuid.UUID | None] = mapped_column()
    cell: Mapped[str | None] = mapped_column(String(255))
    plugin: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str | None] = mapped_column(String(255))
    resource: Mapped[str | None] = mapped_column(String(255))
    ingress: Mapped[str] = mapped_column(String(8))
    caller: Mapped[str | None] = mapped_column(String(255))
    customer_product_id: Mapped[str | None] = mapped_column(String(255))
    #: ``success`` or the problem slug that ended the request.
    outcome: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_requests_created_at", "created_at"),
        Index("ix_requests_installation_created", "installation_id", "created_at"),
    )
