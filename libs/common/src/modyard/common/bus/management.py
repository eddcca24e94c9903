"""Broker users, permissions and queues of untrusted consumers, through RabbitMQ's management API.

The gateway gives every cell, and the runtime every module worker installation, a broker user of
its own whose permissions reach its own queue and one replies exchange only (see
:func:`confined_permissions`); replies are then trusted by their ``user_id`` property, which
RabbitMQ checks against the connection's user.

The API is called as ``MODYARD_AMQP_MANAGEMENT_USERNAME`` (falling back to ``amqp_url``'s user):
a user kept apart from the one that moves the services' messages. RabbitMQ (3.x) lets only users
tagged ``administrator`` create users and set permissions, so that user carries the tag; its
permissions on the vhost are ``configure`` on the confined queues only, with nothing to read or
write, so it cannot consume or publish a message (docs/gateway.md, "The management user").
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
import structlog

from modyard.common.settings import CommonSettings
from modyard.common.tls import client_tls_context

log = structlog.get_logger(__name__)

#: What the management user may configure: the queues it declares for cells and module workers
#: (``appcell.cell.<installation id>``, ``modyard.modules.<installation id>``).
MANAGED_QUEUES = r"^(appcell\.cell|modyard\.modules)\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def management_permissions() -> dict[str, str]:
    """The management user's permissions on the vhost: declare the confined queues, nothing else."""
    return {"configure": MANAGED_QUEUES, "write": "^$", "read": "^$"}


def confined_permissions(queue: str, reply_exchange: str) -> dict[str, str]:
    """A consumer that may take requests from ``queue`` and publish replies to ``reply_exchange``.

    configure  its own queue (a passive declare)
    write      the replies exchange: not the default exchange, so it cannot put messages on
               another consumer's queue
    read       its own queue only
    """
    own_queue = f"^{re.escape(queue)}$"
    return {"configure": own_queue, "write": f"^{re.escape(reply_exchange)}$", "read": own_queue}


def new_password() -> str:
    return secrets.token_urlsafe(24)


class BrokerAdminError(ConnectionError):
    """The management API is unreachable or refused a change (callers retry or answer 503)."""


class BrokerManagement:
    """A client of the management API for one vhost (``amqp_url``'s)."""

    def __init__(self, settings: CommonSettings, *, timeout: float = 10.0) -> None:
        amqp = urlsplit(settings.amqp_url)
        self.vhost = unquote(amqp.path.lstrip("/")) or "/"
        self._amqp = amqp
        self.username = settings.amqp_management_username or unquote(amqp.username or "guest")
        password = settings.amqp_management_password.get_secret_value()
        if not settings.amqp_management_username:
            password = unquote(amqp.password or "guest")
        self._http = httpx.AsyncClient(
            base_url=settings.amqp_management_url,
            auth=(self.username, password),
            timeout=timeout,
            verify=client_tls_context(),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def amqp_url_for(self, username: str, password: str, *, address: str = "") -> str:
        """The broker's URL with another user's credentials; ``address`` (``host[:port]``) when
        consumers reach the broker elsewhere than the services do."""
        if not address:
            address = self._amqp.hostname or "127.0.0.1"
            if self._amqp.port:
                address += f":{self._amqp.port}"
        netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{address}"
        return urlunsplit((self._amqp.scheme, netloc, self._amqp.path, self._amqp.query, ""))

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; 404 is an answer (idempotent deletes), other errors raise."""
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

    async def whoami(self) -> dict[str, Any]:
        answer: dict[str, Any] = (await self.call("GET", "/api/whoami")).json()
        return answer

    async def ensure_confined(
        self, *, user: str, password: str, queue: str, reply_exchange: str
    ) -> None:
        """The consumer's queue, user (with this password) and permissions; idempotent."""
        # Classic and durable: a request is worth nothing after its timeout (it carries an
        # expiration), so the queue trades replication for the lowest latency.
        await self.call(
            "PUT",
            f"/api/queues/{self._vhost}/{quote(queue, safe='')}",
            json={"durable": True, "arguments": {}},
        )
        await self.set_password(user, password)
        await self.call(
            "PUT",
            f"/api/permissions/{self._vhost}/{quote(user, safe='')}",
            json=confined_permissions(queue, reply_exchange),
        )

    async def set_password(self, user: str, password: str) -> None:
        await self.call(
            "PUT", f"/api/users/{quote(user, safe='')}", json={"password": password, "tags": ""}
        )

    async def close_connections(self, user: str, reason: str) -> int:
        """Close the connections ``user`` has open on the vhost; how many there were."""
        response = await self.call("GET", f"/api/vhosts/{self._vhost}/connections")
        connections = response.json() if response.status_code == 200 else []
        closed = 0
        for connection in connections:
            if connection.get("user") == user:
                await self.call(
                    "DELETE",
                    f"/api/connections/{quote(str(connection['name']), safe='')}",
                    headers={"X-Reason": reason},
                )
                closed += 1
        return closed

    async def remove_confined(self, *, user: str, queue: str, reason: str) -> None:
        """Delete the user, close its connections and delete its queue; idempotent."""
        await self.call("DELETE", f"/api/users/{quote(user, safe='')}")
        await self.close_connections(user, reason)
        await self.call("DELETE", f"/api/queues/{self._vhost}/{quote(queue, safe='')}")
