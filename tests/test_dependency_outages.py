"""A service whose database or broker is away reports not-ready and recovers on its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy.engine import make_url

from modyard.testing.infra import IsolatedInfra
from modyard.testing.proxy import OutageProxy
from modyard.testing.services import service_process

pytestmark = pytest.mark.infra


@pytest.fixture
async def proxies(
    infra: IsolatedInfra,
) -> AsyncIterator[tuple[OutageProxy, OutageProxy, dict[str, str]]]:
    """Cuttable loopback proxies in front of PostgreSQL and RabbitMQ, and the env to use them."""
    database = make_url(infra.database_url)
    amqp = urlsplit(infra.amqp_url)
    database_proxy = OutageProxy(database.host or "127.0.0.1", database.port or 5432)
    broker_proxy = OutageProxy(amqp.hostname or "127.0.0.1", amqp.port or 5672)
    await database_proxy.start()
    await broker_proxy.start()
    netloc = f"{amqp.username}:{amqp.password}@127.0.0.1:{broker_proxy.port}"
    env = {
        "MODYARD_DATABASE_URL": database.set(port=database_proxy.port).render_as_string(
            hide_password=False
        ),
        "MODYARD_AMQP_URL": urlunsplit((amqp.scheme, netloc, amqp.path, amqp.query, "")),
    }
    yield database_proxy, broker_proxy, env
    await database_proxy.close()
    await broker_proxy.close()


async def readiness(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/readyz")


async def wait_for_status(
    client: httpx.AsyncClient, status: int, timeout: float = 30
) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await readiness(client)
        if response.status_code == status:
            return response
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/readyz stayed {response.status_code}: {response.text}")
        await asyncio.sleep(0.2)


async def test_service_started_without_database_or_broker_becomes_ready_when_they_come(
    proxies: tuple[OutageProxy, OutageProxy, dict[str, str]],
) -> None:
    database_proxy, broker_proxy, env = proxies
    await database_proxy.cut()
    await broker_proxy.cut()
    async with service_process("runtime", env, ready=False) as runtime:
        async with httpx.AsyncClient(base_url=runtime.url, timeout=10) as client:
            for _ in range(100):
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert health.status_code == 200

            not_ready = await readiness(client)
            assert not_ready.status_code == 503
            assert not_ready.headers["content-type"] == "application/problem+json"
            assert not_ready.json()["checks"]["database"] == "down"
            assert not_ready.json()["checks"]["broker"] == "down"

            await database_proxy.restore()
            await broker_proxy.restore()
            await wait_for_status(client, 200, timeout=45)
            assert runtime.process.returncode is None  # it waited; it did not crash


async def test_service_survives_broker_and_database_outages(
    proxies: tuple[OutageProxy, OutageProxy, dict[str, str]],
) -> None:
    database_proxy, broker_proxy, env = proxies
    async with service_process("deployer", env) as deployer:
        async with httpx.AsyncClient(base_url=deployer.url, timeout=10) as client:
            await broker_proxy.cut()
            down = await wait_for_status(client, 503)
            assert down.json()["checks"]["broker"] == "down"
            await broker_proxy.restore()
            await wait_for_status(client, 200, timeout=45)

            await database_proxy.cut()
            down = await wait_for_status(client, 503)
            assert down.json()["checks"]["database"] == "down"
            await database_proxy.restore()
            await wait_for_status(client, 200, timeout=45)
            assert deployer.process.returncode is None
