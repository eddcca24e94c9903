"""Deployments: desired spec and state, encrypted registry token and env, observed status.

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
        "deployments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=True),
        sa.Column("digest", sa.String(length=200), nullable=True),
        sa.Column("registry_host", sa.String(length=255), nullable=False),
        sa.Column("token_id", sa.String(length=255), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("env_encrypted", sa.Text(), nullable=False),
        sa.Column("env_names", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("desired", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("serving_generation", sa.Integer(), nullable=True),
        sa.Column("serving_image", sa.String(length=512), nullable=True),
        sa.Column("failed_generation", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column(
            "status_since",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("progress", sa.Text(), nullable=True),
        sa.Column("restart_count", sa.Integer(), nullable=False),
        sa.Column("backoff_step", sa.Integer(), nullable=False),
        sa.Column("next_restart_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("name", name=op.f("uq_deployments_name")),
    )
    op.create_index(op.f("ix_deployments_status"), "deployments", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deployments_status"), table_name="deployments")
    op.drop_table("deployments")
