"""Encrypt the system-webhook secrets stored in plain text before secrets were encrypted at rest.

Uses the runtime's own keys (``MODYARD_RUNTIME_SECRET_KEYS``), read when the migration runs; a
secret that already decrypts under them is left as it is, so running it again changes nothing.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from modyard.common.secrets import SecretUnreadable
from modyard.runtime.settings import RuntimeSettings

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    box = RuntimeSettings().secret_box()
    connection = op.get_bind()
    for webhook_id, secret in connection.execute(sa.text("SELECT id, secret FROM system_webhooks")):
        try:
            box.decrypt(secret)
        except SecretUnreadable:
            connection.execute(
                sa.text("UPDATE system_webhooks SET secret = :secret WHERE id = :id"),
                {"secret": box.encrypt(secret.encode()), "id": webhook_id},
            )


def downgrade() -> None:
    box = RuntimeSettings().secret_box()
    connection = op.get_bind()
    for webhook_id, secret in connection.execute(sa.text("SELECT id, secret FROM system_webhooks")):
        connection.execute(
            sa.text("UPDATE system_webhooks SET secret = :secret WHERE id = :id"),
            {"secret": box.decrypt(secret).decode(), "id": webhook_id},
        )
