"""Each workspace's egress allow-list.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_egress",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("allow_cidrs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("allow_hosts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("workspace", name=op.f("pk_workspace_egress")),
    )


def downgrade() -> None:
    op.drop_table("workspace_egress")
