"""Per-session isolation on the shared local infrastructure.

Every test session gets a PostgreSQL database and a RabbitMQ vhost of its own (and drops them at
the end), so tests never see the data or the queues of a ``make up`` running beside them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from modyard.common.bus.management import management_permissions
from modyard.common.db.raw_connections import (
    asyncpg_dsn as asyncpg_dsn,  # re-exported for the tests
)
from modyard.common.network import is_loopback, tcp_reachable
from modyard.common.settings import CommonSettings


@dataclass(frozen=True)
class IsolatedInfra:
    database_url: str
    amqp_url: str
    management_url: str
    vhost: str
    amqp_user: str
    amqp_password: str

    def env(self) -> dict[str, str]:
        """Environment for a service process that should use this isolated infrastructure."""
        return {"MODYARD_DATABASE_URL": self.database_url, "MODYARD_AMQP_URL": self.amqp_url}


def non_loopback_targets(settings: CommonSettings) -> list[str]:
    """Configured infrastructure that is not on this machine: tests refuse to send traffic there."""
    hosts = {
        "MODYARD_DATABASE_URL": make_url(settings.database_url).host or "",
        "MODYARD_AMQP_URL": urlsplit(settings.amqp_url).hostname or "",
        "MODYARD_AMQP_MANAGEMENT_URL": urlsplit(settings.amqp_management_url).hostname or "",
        "MODYARD_IMAGE_REGISTRY_URL": urlsplit(settings.image_registry_url).hostname or "",
    }
    return [f"{name} ({host})" for name, host in hosts.items() if not is_loopback(host)]


def missing_infrastructure(settings: CommonSettings) -> list[str]:
    """What the tests need and cannot reach, each with the URL that was tried."""
    database = make_url(settings.database_url)
    amqp = urlsplit(settings.amqp_url)
    missing = []
    if not tcp_reachable(database.host or "127.0.0.1", database.port or 5432):
        missing.append(f"PostgreSQL at {database.host}:{database.port}")
    if not tcp_reachable(amqp.hostname or "127.0.0.1", amqp.port or 5672):
        missing.append(f"RabbitMQ at {amqp.hostname}:{amqp.port}")
    return missing


@asynccontextmanager
async def isolated_infra(settings: CommonSettings) -> AsyncIterator[IsolatedInfra]:
    name = f"modyard_test_{uuid.uuid4().hex[:10]}"
    admin_dsn = asyncpg_dsn(settings.database_url)
    amqp = urlsplit(settings.amqp_url)
    user, password = amqp.username or "guest", amqp.password or "guest"

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    async with httpx.AsyncClient(
        base_url=settings.amqp_management_url, auth=(user, password)
    ) as api:
        (await api.put(f"/api/vhosts/{name}")).raise_for_status()
        (
            await api.put(
                f"/api/permissions/{name}/{quote(user, safe='')}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
            )
        ).raise_for_status()
        if settings.amqp_management_username:
            # The dedicated management user (cells' and workers' users) works on this vhost too.
            (
                await api.put(
                    f"/api/permissions/{name}/{quote(settings.amqp_management_username, safe='')}",
                    json=management_permissions(),
                )
            ).raise_for_status()
    try:
        yield IsolatedInfra(
            database_url=make_url(settings.database_url)
            .set(database=name)
            .render_as_string(hide_password=False),
            amqp_url=urlunsplit((amqp.scheme, amqp.netloc, f"/{name}", amqp.query, "")),
            management_url=settings.amqp_management_url,
            vhost=name,
            amqp_user=user,
            amqp_password=password,
        )
    finally:
        async with httpx.AsyncClient(
            base_url=settings.amqp_management_url, auth=(user, password)
        ) as api:
            await api.delete(f"/api/vhosts/{name}")
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
