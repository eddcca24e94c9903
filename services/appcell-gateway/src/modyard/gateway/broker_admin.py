"""The cells' RabbitMQ users, permissions and queues, through the management HTTP API.

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

import re
import secrets
import uuid
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import structlog

from modyard.gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

CELL_QUEUE_PREFIX = "appcell.cell."
REPLIES_EXCHANGE = "appcell.replies"
USER_PREFIX = "modyard-cell."


def cell_queue(installation_id: uuid.UUID) -> str:
    return f"{CELL_QUEUE_PREFIX}{installation_id}"


def cell_user(installation_id: uuid.UUID) -> str:
    return f"{USER_PREFIX}{installation_id}"


def cell_permissions(installation_id: uuid.UUID) -> dict[str, str]:
    own_queue = f"^{re.escape(cell_queue(installation_id))}$"
    return {
        "configure": own_queue,
        "write": f"^{re.escape(REPLIES_EXCHANGE)}$",
        "read": own_queue,
    }


class BrokerAdminError(ConnectionError):
    """The management API is unreachable or refused a change (the event is retried)."""


class BrokerAdmin:
    def __init__(self, settings: GatewaySettings) -> None:
        amqp = urlsplit(settings.amqp_url)
        self.vhost = unquote(amqp.path.lstrip("/")) or "/"
        self._amqp = amqp
        self._cell_address = settings.cell_broker_address
        self._http = httpx.AsyncClient(
            base_url=settings.amqp_management_url,
            auth=(unquote(amqp.username or "guest"), unquote(amqp.password or "guest")),
            timeout=settings.management_timeout_seconds,
        )

    async def close(self) -> None:
        await self._http.aclose()

    def amqp_url_for(self, username: str, password: str) -> str:
        """The broker's URL as cells reach it, with the cell's own credentials."""
        address = self._cell_address
        if not address:
            address = self._amqp.hostname or "127.0.0.1"
            if self._amqp.port:
                address += f":{self._amqp.port}"
        netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{address}"
        return urlunsplit((self._amqp.scheme, netloc, self._amqp.path, self._amqp.query, ""))

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BrokerAdminError(f"the broker's management API cannot be reached: {exc}") from exc
        if response.is_error and response.status_code != 404:
            raise BrokerAdminError(
                f"the broker's management API answered {response.status_code} to {method} {path}"
            )
        return response

    @property
    def _vhost(self) -> str:
        return quote(self.vhost, safe="")

    async def ensure_cell(self, installation_id: uuid.UUID, password: str) -> None:
        """The cell's queue, user and permissions; idempotent (a redelivered event repeats it)."""
        queue = quote(cell_queue(installation_id), safe="")
        # Classic and durable: a request is worth nothing after its timeout (it carries an
        # expiration), so the queue trades replication for the lowest latency.
        await self._call(
            "PUT", f"/api/queues/{self._vhost}/{queue}", json={"durable": True, "arguments": {}}
        )
        user = quote(cell_user(installation_id), safe="")
        await self._call("PUT", f"/api/users/{user}", json={"password": password, "tags": ""})
        await self._call(
            "PUT",
            f"/api/permissions/{self._vhost}/{user}",
            json=cell_permissions(installation_id),
        )

    async def remove_cell(self, installation_id: uuid.UUID) -> None:
        """Delete the user, close its connections and delete its queue; idempotent."""
        username = cell_user(installation_id)
        await self._call("DELETE", f"/api/users/{quote(username, safe='')}")
        response = await self._call("GET", f"/api/vhosts/{self._vhost}/connections")
        connections = response.json() if response.status_code == 200 else []
        for connection in connections:
            if connection.get("user") == username:
                await self._call(
                    "DELETE",
                    f"/api/connections/{quote(str(connection['name']), safe='')}",
                    headers={"X-Reason": "the cell's installation was removed"},
                )
        queue = quote(cell_queue(installation_id), safe="")
        await self._call("DELETE", f"/api/queues/{self._vhost}/{queue}")
        log.info("cell_broker_access_removed", installation_id=str(installation_id))


def new_password() -> str:
    return secrets.token_urlsafe(24)
