"""Tables of automations and app instances (runtime schema, migration 0004).

They share the runtime's metadata so that one Alembic history covers the schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from modyard.runtime.models import Base


class AutomationWorkspace(Base):
    """A workspace's app-facing settings: what a publish carries besides the automations."""

    __tablename__ = "automation_workspaces"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    photo: Mapped[str | None] = mapped_column(String(2048))
    #: Prisme.ai's ``config.schema``: field name → JSON Schema (``secret: true`` marks secrets).
    config_schema: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    #: Prisme.ai's ``config.value``: the workspace's own config (an app's defaults).
    config_value: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    #: Fixed by the first publish, for ever; one app per workspace.
    app_name: Mapped[str | None] = mapped_column(String(128), unique=True)
    published_version: Mapped[str | None] = mapped_column(String(64))
    #: The last minute whose schedules ran (one runtime process wins each minute).
    scheduled_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Bumped on every change of the workspace or its automations (caches compare it).
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class StoredAutomation(Base):
    __tablename__ = "automations"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class AppInstance(Base):
    """An installed app (a ``prismeai`` module), as the installer's events describe it.

    ``slug`` is the installation's: ``toolbox``, or ``nlu.french`` for the instance ``french``
    that the ``nlu`` instance imports. ``manifest`` is the app version's automations and config.
    """

    __tablename__ = "app_instances"

    workspace: Mapped[str] = mapped_column(String(64), primary_key=True)
    slug: Mapped[str] = mapped_column(String(255), primary_key=True)
    installation_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    module: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(128))
    pinned: Mapped[bool] = mapped_column(default=False)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONB)
    #: The effective config (instance > environment > app defaults), secrets encrypted apart.
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
