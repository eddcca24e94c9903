"""Automations, the workspaces' app settings (publishing) and app instances.

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
        "automation_workspaces",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("photo", sa.String(length=2048), nullable=True),
        sa.Column("config_schema", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("config_value", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("app_name", sa.String(length=128), nullable=True),
        sa.Column("published_version", sa.String(length=64), nullable=True),
        sa.Column("scheduled_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("workspace", name=op.f("pk_automation_workspaces")),
        sa.UniqueConstraint("app_name", name=op.f("uq_automation_workspaces_app_name")),
    )
    op.create_table(
        "automations",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=128), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("workspace", "slug", name=op.f("pk_automations")),
    )
    op.create_table(
        "app_instances",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("installation_id", sa.UUID(), nullable=False),
        sa.Column("module", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("manifest", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("workspace", "slug", name=op.f("pk_app_instances")),
    )
    op.create_index(
        op.f("ix_app_instances_installation_id"), "app_instances", ["installation_id"], unique=False
    )
    op.create_index(op.f("ix_app_instances_module"), "app_instances", ["module"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_app_instances_module"), table_name="app_instances")
    op.drop_index(op.f("ix_app_instances_installation_id"), table_name="app_instances")
    op.drop_table("app_instances")
    op.drop_table("automations")
    op.drop_table("automation_workspaces")
