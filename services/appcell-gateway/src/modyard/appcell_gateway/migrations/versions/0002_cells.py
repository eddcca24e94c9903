"""Cells (the compiled catalogue of installed AppCell modules, their broker credentials) and the
request log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cells",
        sa.Column("installation_id", sa.Uuid(), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("module", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("catalogue", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("amqp_username", sa.String(length=255), nullable=True),
        sa.Column("amqp_password", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("installation_id", name=op.f("pk_cells")),
    )
    op.create_index("ix_cells_workspace_slug", "cells", ["workspace", "slug"], unique=False)
    op.create_table(
        "requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=False),
        sa.Column("installation_id", sa.Uuid(), nullable=True),
        sa.Column("cell", sa.String(length=255), nullable=True),
        sa.Column("plugin", sa.String(length=255), nullable=True),
        sa.Column("action", sa.String(length=255), nullable=True),
        sa.Column("resource", sa.String(length=255), nullable=True),
        sa.Column("ingress", sa.String(length=8), nullable=False),
        sa.Column("caller", sa.String(length=255), nullable=True),
        sa.Column("customer_product_id", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index("ix_requests_created_at", "requests", ["created_at"], unique=False)
    op.create_index(
        "ix_requests_installation_created",
        "requests",
        ["installation_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_installation_created", table_name="requests")
    op.drop_index("ix_requests_created_at", table_name="requests")
    op.drop_table("requests")
    op.drop_index("ix_cells_workspace_slug", table_name="cells")
    op.drop_table("cells")
