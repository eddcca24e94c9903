"""A runtime process killed (SIGKILL) with messages in flight loses none of them, and no node's
effect is applied twice: a second process picks up where the first stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import aio_pika
import asyncpg
import httpx
import pytest

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.common.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.common.testing.services import auth_headers, service_process
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.topology import WORK_EXCHANGE, WORK_ROUTING_KEY

pytestmark = pytest.mark.infra

MESSAGES = 1500
SCHEMA = "runtime_crash"


async def logged(database: asyncpg.Connection, flow_id: str) -> tuple[int, int]:
    row = await database.fetchrow(
        "SELECT count(*), count(DISTINCT entry->>'n') FROM node_logs WHERE flow_id = $1",
        uuid.UUID(flow_id),
    )
    assert row is not None
    return int(row[0]), int(row[1])


async def test_killing_the_runtime_mid_flow_loses_and_repeats_nothing(infra: IsolatedInfra) -> None:
    env = {**infra.env(), "MODYARD_RUNTIME_DB_SCHEMA": SCHEMA}
    headers = auth_headers(CommonSettings(), Role.operator, workspaces=("crash",))
    definition = {
        "nodes": {
            "shape": {
                "component": "core.transform",
                "properties": {"mapping": {"n": "{{ payload.n }}"}},
            },
            "sink": {"component": "core.log"},
        },
        "connections": [{"from": "shape", "to": "sink"}],
    }
    database = await asyncpg.connect(
        asyncpg_dsn(infra.database_url), server_settings={"search_path": SCHEMA}
    )
    try:
        async with service_process("runtime", env) as first:
            async with httpx.AsyncClient(base_url=first.url, headers=headers) as api:
                created = await api.post(
                    "/v1/workspaces/crash/flows", json={"name": "crash", "definition": definition}
                )
                flow_id = created.json()["id"]
                assert (
                    await api.post(f"/v1/workspaces/crash/flows/{flow_id}/start")
                ).status_code == 200
            connection = await aio_pika.connect(infra.amqp_url)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                exchange = await channel.get_exchange(WORK_EXCHANGE)
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                WorkMessage(
                                    workspace="crash",
                                    flow_id=flow_id,
                                    node_id="shape",
                                    payload={"n": n},
                                )
                                .model_dump_json()
                                .encode(),
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            ),
                            routing_key=WORK_ROUTING_KEY,
                        )
                        for n in range(MESSAGES)
                    )
                )
            for _ in range(200):  # let it get some of the way, then pull the plug
                if (await logged(database, flow_id))[0] >= 100:
                    break
                await asyncio.sleep(0.05)
            os.kill(first.process.pid, signal.SIGKILL)
            await first.process.wait()
        done_before_crash = (await logged(database, flow_id))[0]
        assert done_before_crash < MESSAGES, "the crash came too late to prove anything"

        async with service_process("runtime", env):
            for _ in range(1200):
                total, distinct = await logged(database, flow_id)
                if distinct == MESSAGES:
                    break
                await asyncio.sleep(0.1)
        total, distinct = await logged(database, flow_id)
        assert distinct == MESSAGES  # none lost
        assert total == MESSAGES  # none logged twice
        unprocessed = await database.fetchval("SELECT count(*) FROM unprocessed_messages")
        assert unprocessed == 0
    finally:
        await database.close()
