"""Cutting a process's broker connection from the broker's side, as a network failure or an
operator would: the tests of reconnects (a per-process queue declared again, a replica dropping
its copies, the cell SDK's wire) close it through RabbitMQ's management API."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually


async def close_connections_named(
    infra: IsolatedInfra, name: str, *, count: int = 1, timeout: float = 10.0
) -> list[str]:
    """Close the connections of ``infra``'s vhost whose client called itself ``name``
    (``client_properties.connection_name``: ``modyard-<service>`` for a service's bus) once
    ``count`` of them are listed, and return the broker's names of those closed.

    The management API lists a new connection with its next statistics (up to 5 s), each at its
    own moment: waiting for one only, when two processes share the name, closes the first listed
    and leaves the other connected."""
    async with httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
    ) as api:
        names: list[str] = []

        async def listed() -> bool:
            answer = await api.get(f"/api/vhosts/{quote(infra.vhost, safe='')}/connections")
            answer.raise_for_status()
            names[:] = [
                str(connection["name"])
                for connection in answer.json()
                if connection.get("client_properties", {}).get("connection_name") == name
            ]
            return len(names) >= count

        await eventually(listed, timeout=timeout)
        for broker_name in names:
            closed = await api.delete(f"/api/connections/{quote(broker_name, safe='')}")
            closed.raise_for_status()
    return names
