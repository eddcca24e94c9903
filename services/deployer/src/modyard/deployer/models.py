"""Tables of the deployer service, in its own schema (``deployer``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, Float, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from modyard.common.db.base import ServiceModel, service_metadata

metadata = service_metadata()


class Base(ServiceModel, DeclarativeBase):
    metadata = metadata


class Desired(StrEnum):
    """What the operator asked for; the reconciler makes Docker match it."""

    not_deployed = "not_deployed"
    running = "running"
    suspended = "suspended"
    deleted = "deleted"


class Status(StrEnum):
    """What was last observed (the statuses of the OneEntry document, plus ``deleting``)."""

    not_deployed = "not_deployed"
    deploying = "deploying"
    running = "running"
    suspended = "suspended"
    warn = "warn"
    deleting = "deleting"


class Deployment(Base):
    """A container module: its desired spec and state, and what the reconciler last saw."""

    __tablename__ = "deployments"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    #: ``host/path`` of the image; the version is ``tag`` or ``digest``.
    repository: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str | None] = mapped_column(String(128))
    digest: Mapped[str | None] = mapped_column(String(200))
    registry_host: Mapped[str] = mapped_column(String(255))
    token_id: Mapped[str] = mapped_column(String(255))
    #: Fernet tokens (``secrets.SecretBox``): the registry token, and the env as a JSON object.
    token_encrypted: Mapped[str] = mapped_column(Text)
    env_encrypted: Mapped[str] = mapped_column(Text)
    #: The env's names (values stay encrypted), shown in the read model.
    env_names: Mapped[list[str]] = mapped_column(JSONB, default=list)
    port: Mapped[int | None] = mapped_column(Integer)
    #: What the deployment declares beyond the confined defaults (container_policy): capabilities
    #: to add back, a ``uid:gid``, the writable paths (None: ``/tmp``), limits (None: defaults).
    capabilities: Mapped[list[str]] = mapped_column(JSONB, default=list)
    run_as_user: Mapped[str | None] = mapped_column(String(32))
    writable_paths: Mapped[list[str] | None] = mapped_column(JSONB)
    memory_limit_mb: Mapped[int | None] = mapped_column(Integer)
    cpu_limit: Mapped[float | None] = mapped_column(Float)
    pids_limit: Mapped[int | None] = mapped_column(Integer)

    desired: Mapped[str] = mapped_column(String(16), default=Desired.not_deployed.value)
    #: Bumped by every deploy and every change of the spec: a container runs one generation.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    #: The generation whose container last came up (the one that keeps serving during updates).
    serving_generation: Mapped[int | None] = mapped_column(Integer)
    #: The image reference of that generation (what serves while a newer one failed).
    serving_image: Mapped[str | None] = mapped_column(String(512))
    #: A generation whose rollout failed while an older one kept serving: not retried by itself.
    failed_generation: Mapped[int | None] = mapped_column(Integer)

    status: Mapped[str] = mapped_column(String(16), default=Status.not_deployed.value, index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    status_since: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    #: What the deployer is doing right now (pull progress, waiting for health), for the CLI.
    progress: Mapped[str | None] = mapped_column(Text)
    #: Restarts after crashes (or failed health checks) since the last deploy.
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Position in the current crash streak (CrashLoopBackOff), reset after a long enough run.
    backoff_step: Mapped[int] = mapped_column(Integer, default=0)
    next_restart_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
