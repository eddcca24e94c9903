"""The cells' RabbitMQ users, permissions and queues (the management API client is
:mod:`modyard.common.bus.management`, shared with the runtime's module workers).

Each installation gets a user ``modyard-cell.<installation id>`` with a random password and, on the
deployment's vhost, permissions that reach nothing but its own request queue (configure, read) and
the gateway's replies exchange (write):

    configure  ^appcell\\.cell\\.<id>$         declare (passively) its own queue
    write      ^appcell\\.replies$            answer; it cannot publish anywhere else, so it cannot
                                             put requests on another cell's queue
    read       ^appcell\\.cell\\.<id>$         consume its own queue only

A cell that touches another cell's queue is refused by the broker (ACCESS_REFUSED). Replies carry
the ``user_id`` property, which RabbitMQ checks against the connection's user, and the gateway
accepts a reply only from the user of the cell it asked.
"""

from __future__ import annotations

import uuid

import structlog

from modyard.appcell_gateway.settings import GatewaySettings
from modyard.common.bus.management import (
    BrokerAdminError,
    BrokerManagement,
    confined_permissions,
    new_password,
)

__all__ = ["BrokerAdmin", "BrokerAdminError", "cell_permissions", "new_password"]

log = structlog.get_logger(__name__)

CELL_QUEUE_PREFIX = "appcell.cell."
REPLIES_EXCHANGE = "appcell.replies"
USER_PREFIX = "modyard-cell."


def cell_queue(installation_id: uuid.UUID) -> str:
    return f"{CELL_QUEUE_PREFIX}{installation_id}"


def cell_user(installation_id: uuid.UUID) -> str:
    return f"{USER_PREFIX}{installation_id}"


def cell_permissions(installation_id: uuid.UUID) -> dict[str, str]:
    return confined_permissions(cell_queue(installation_id), REPLIES_EXCHANGE)


class BrokerAdmin:
    def __init__(self, settings: GatewaySettings) -> None:
        self.management = BrokerManagement(settings, timeout=settings.management_timeout_seconds)
        self.vhost = self.management.vhost
        self._cell_address = settings.cell_broker_address

    async def close(self) -> None:
        await self.management.close()

    def amqp_url_for(self, username: str, password: str) -> str:
        """The broker's URL as cells reach it, with the cell's own credentials."""
        return self.management.amqp_url_for(username, password, address=self._cell_address)

    async def ensure_cell(self, installation_id: uuid.UUID, password: str) -> None:
        """The cell's queue, user and permissions; idempotent (a redelivered event repeats it)."""
        await self.management.ensure_confined(
            user=cell_user(installation_id),
            password=password,
            queue=cell_queue(installation_id),
            reply_exchange=REPLIES_EXCHANGE,
        )

    async def remove_cell(self, installation_id: uuid.UUID) -> None:
        """Delete the user, close its connections and delete its queue; idempotent."""
        await self.management.remove_confined(
            user=cell_user(installation_id),
            queue=cell_queue(installation_id),
            reason="the cell's installation was removed",
        )
        log.info("cell_broker_access_removed", installation_id=str(installation_id))
