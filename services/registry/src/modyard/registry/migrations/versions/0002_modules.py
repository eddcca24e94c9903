"""Modules, their immutable versions and content-addressed archives.

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
        "archives",
        sa.Column("digest", sa.String(80), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "modules",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("latest_version", sa.String(128), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("name", name="uq_modules_name"),
    )
    op.create_index("ix_modules_format", "modules", ["format"])
    op.create_index("ix_modules_kind", "modules", ["kind"])
    op.create_table(
        "module_versions",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "module_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey(
                "modules.id", ondelete="RESTRICT", name="fk_module_versions_module_id_modules"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("major", sa.Integer(), nullable=False),
        sa.Column("minor", sa.Integer(), nullable=False),
        sa.Column("patch", sa.Integer(), nullable=False),
        sa.Column("prerelease", sa.Boolean(), nullable=False),
        sa.Column("manifest", postgresql.JSONB(), nullable=False),
        sa.Column(
            "archive_digest",
            sa.String(80),
            sa.ForeignKey(
                "archives.digest",
                ondelete="RESTRICT",
                name="fk_module_versions_archive_digest_archives",
            ),
            nullable=False,
        ),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("published_by", sa.String(255), nullable=False),
        sa.Column(
            "published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("yanked", sa.Boolean(), nullable=False),
        sa.Column("yanked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("yanked_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("module_id", "version", name="uq_module_versions_module_version"),
    )
    op.create_index(
        "ix_module_versions_module_order",
        "module_versions",
        ["module_id", "major", "minor", "patch"],
    )


def downgrade() -> None:
    op.drop_table("module_versions")
    op.drop_table("modules")
    op.drop_table("archives")
