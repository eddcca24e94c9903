"""Tables of the registry service, in its own schema (``registry``).

Archives are stored content-addressed in PostgreSQL (``bytea``): publishing is then one
transaction (a rejected or failed upload leaves nothing behind), and identical archives are kept
once. At the 10 MiB cap this is well within what PostgreSQL handles; an object store can replace
``archives`` later without changing the API.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from modyard.common.db.base import ServiceModel, service_metadata

metadata = service_metadata()


class Base(ServiceModel, DeclarativeBase):
    metadata = metadata


class Archive(Base):
    __tablename__ = "archives"

    digest: Mapped[str] = mapped_column(String(80), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Module(Base):
    __tablename__ = "modules"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    format: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    #: From the newest version that is not yanked: what search and listings show.
    latest_version: Mapped[str | None] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    versions: Mapped[list[ModuleVersion]] = relationship(back_populates="module")


class ModuleVersion(Base):
    __tablename__ = "module_versions"
    __table_args__ = (
        UniqueConstraint("module_id", "version", name="uq_module_versions_module_version"),
        Index("ix_module_versions_module_order", "module_id", "major", "minor", "patch"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    module_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("modules.id", ondelete="RESTRICT"))
    version: Mapped[str] = mapped_column(String(128))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    prerelease: Mapped[bool] = mapped_column(Boolean, default=False)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSONB)
    archive_digest: Mapped[str] = mapped_column(ForeignKey("archives.digest", ondelete="RESTRICT"))
    size: Mapped[int] = mapped_column(BigInteger)
    published_by: Mapped[str] = mapped_column(String(255))
    published_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    yanked: Mapped[bool] = mapped_column(Boolean, default=False)
    yanked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    yanked_reason: Mapped[str | None] = mapped_column(Text)

    module: Mapped[Module] = relationship(back_populates="versions")
