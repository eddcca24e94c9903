"""The shared messaging tables: outbox, processed events, diagnostic ping receipts.

Revision ID: 0001
Revises:
"""

from modyard.common.db.migration_ops import create_messaging_tables_v1, drop_messaging_tables_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables_v1()


def downgrade() -> None:
    drop_messaging_tables_v1()
