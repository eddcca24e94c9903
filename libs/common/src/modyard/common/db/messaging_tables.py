"""Tables every service has in its own schema: the outbox, processed events, diagnostic pings.

They are plain Core tables without a schema; each service's ``search_path`` places them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("exchange", String(255), nullable=False),
    Column("routing_key", String(255), nullable=False),
    Column("envelope", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error", Text, nullable=True),
    Index(
        "ix_outbox_pending",
        "next_attempt_at",
        "seq",
        postgresql_where=text("published_at IS NULL"),
    ),
    Index("ix_outbox_published_at", "published_at"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(255), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("event_type", String(255), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    Index("ix_processed_events_processed_at", "processed_at"),
)

diagnostic_ping_receipts = Table(
    "diagnostic_ping_receipts",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ping_id", String(64), nullable=False, index=True),
    Column("event_id", String(255), nullable=False),
    Column("sent_by", String(255), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
