"""The management API is used with a dedicated broker user (issue 17, hole 11, part), live.

The gateway creates cells' users as ``MODYARD_AMQP_MANAGEMENT_USERNAME``, not as ``amqp_url``'s
user, and that user can declare the cells' queues but neither read nor publish a message: with its
password one cannot take a cell's requests or put forged ones on its queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import httpx
import pytest
from pydantic import SecretStr

from modyard.appcell_gateway.broker_admin import BrokerAdmin, cell_queue, cell_user, new_password
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.common.bus.management import management_permissions
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra


@pytest.fixture
async def management_user(infra: IsolatedInfra) -> AsyncIterator[tuple[str, str]]:
    """A management user set up as docs/gateway.md says (what `modyard dev infra up` does)."""
    name, password = f"modyard-management-{uuid.uuid4().hex[:8]}", new_password()
    async with httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
    ) as api:
        created = await api.put(
            f"/api/users/{name}", json={"password": password, "tags": "administrator"}
        )
        created.raise_for_status()
        granted = await api.put(
            f"/api/permissions/{infra.vhost}/{name}", json=management_permissions()
        )
        granted.raise_for_status()
        yield name, password
        await api.delete(f"/api/users/{name}")


async def test_cells_get_their_broker_users_through_the_dedicated_management_user(
    infra: IsolatedInfra, management_user: tuple[str, str]
) -> None:
    name, password = management_user
    broker = BrokerAdmin(
        GatewaySettings(
            amqp_url=infra.amqp_url,
            amqp_management_url=infra.management_url,
            amqp_management_username=name,
            amqp_management_password=SecretStr(password),
        )
    )
    installation = uuid.uuid4()
    cell_password = new_password()
    try:
        assert (await broker.management.whoami())["name"] == name != infra.amqp_user

        await broker.ensure_cell(installation, cell_password)
        cell = await aio_pika.connect(broker.amqp_url_for(cell_user(installation), cell_password))
        try:
            channel = await cell.channel()
            queue = await channel.declare_queue(cell_queue(installation), passive=True)
            assert await queue.get(no_ack=True, fail=False) is None  # its own queue: readable
        finally:
            await cell.close()

        # With the management user's password no message can be taken from a cell's queue or
        # put on it.
        manager = await aio_pika.connect(broker.amqp_url_for(name, password))
        try:
            channel = await manager.channel()
            queue = await channel.get_queue(cell_queue(installation), ensure=False)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await queue.get(no_ack=True)
            channel = await manager.channel(publisher_confirms=True)
            with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"{}"), routing_key=cell_queue(installation)
                )
        finally:
            await manager.close()

        await broker.remove_cell(installation)
        with pytest.raises(aiormq.exceptions.ProbableAuthenticationError):
            await aio_pika.connect(broker.amqp_url_for(cell_user(installation), cell_password))
    finally:
        await broker.remove_cell(installation)
        await broker.close()
