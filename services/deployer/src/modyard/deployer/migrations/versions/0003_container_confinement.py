"""Deployments declare their confinement: capabilities, user, writable paths, limits.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "deployments",
        sa.Column(
            "capabilities",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'[]'::jsonb"),
        ),
    )
    op.add_column("deployments", sa.Column("run_as_user", sa.String(32)))
    op.add_column(
        "deployments",
        sa.Column("writable_paths", postgresql.JSONB(astext_type=sa.Text())),
    )
    op.add_column("deployments", sa.Column("memory_limit_mb", sa.Integer()))
    op.add_column("deployments", sa.Column("cpu_limit", sa.Float()))
    op.add_column("deployments", sa.Column("pids_limit", sa.Integer()))


def downgrade() -> None:
    for column in (
        "pids_limit",
        "cpu_limit",
        "memory_limit_mb",
        "writable_paths",
        "run_as_user",
        "capabilities",
    ):
        op.drop_column("deployments", column)
