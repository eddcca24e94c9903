"""A workspace's egress allow-list, in the runtime's schema."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from modyard.runtime.models import Base


class WorkspaceEgress(Base):
    """Destinations one workspace's flows and automations may reach beyond the deployment's
    policy (never the platform's own endpoints)."""

    __tablename__ = "workspace_egress"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Networks (canonical text, e.g. ``10.20.0.0/16``).
    allow_cidrs: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)
    #: Host patterns (``api.corp.example``, ``*.corp.example``).
    allow_hosts: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)
    updated_by: Mapped[str] = mapped_column(String(255), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )
