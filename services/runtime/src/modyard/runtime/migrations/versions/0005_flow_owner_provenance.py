"""Who created a flow, and which operator named another owner.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("flows", sa.Column("created_by", sa.String(length=255), nullable=True))
    op.add_column("flows", sa.Column("owner_set_by", sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column("flows", "owner_set_by")
    op.drop_column("flows", "created_by")
