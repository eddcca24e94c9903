"""Publishers whose new versions a workspace's installations follow.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publisher_allowances",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("workspace_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("publisher", sa.String(length=64), nullable=False),
        sa.Column("module", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_publisher_allowances_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publisher_allowances")),
        sa.UniqueConstraint(
            "workspace_id", "publisher", "module", name=op.f("uq_publisher_allowances_workspace_id")
        ),
    )
    op.create_index(
        op.f("ix_publisher_allowances_workspace_id"),
        "publisher_allowances",
        ["workspace_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("publisher_allowances")
