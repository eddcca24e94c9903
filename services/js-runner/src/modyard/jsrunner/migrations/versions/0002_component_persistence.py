"""What Appmixer components keep between calls: state, locks, timers, data stores, files.

Revision ID: 0002
Revises: 0001
"""

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _now() -> sa.Column[datetime]:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "component_state",
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(512), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("flow_id", sa.String(64), server_default="", nullable=False),
        sa.Column("persistent", sa.Boolean(), server_default=sa.false(), nullable=False),
        _now(),
        sa.PrimaryKeyConstraint(
            "workspace", "scope", "owner", "key", name=op.f("pk_component_state")
        ),
    )
    op.create_index(
        "ix_component_state_flow", "component_state", ["workspace", "flow_id", "persistent"]
    )
    op.create_table(
        "component_locks",
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workspace", "name", name=op.f("pk_component_locks")),
    )
    op.create_table(
        "component_timers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("flow_id", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(255), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_timers")),
    )
    op.create_table(
        "store_items",
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("store_id", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("value", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        _now(),
        sa.PrimaryKeyConstraint("workspace", "store_id", "key", name=op.f("pk_store_items")),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(1024), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index(op.f("ix_files_workspace"), "files", ["workspace"])
    op.create_table(
        "file_chunks",
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["files.id"],
            name=op.f("fk_file_chunks_file_id_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_file_chunks")),
    )


def downgrade() -> None:
    for table in (
        "file_chunks",
        "files",
        "store_items",
        "component_timers",
        "component_locks",
        "component_state",
    ):
        op.drop_table(table)
