"""Load the runtime's benchmarks push through a flow: messages straight onto the work exchange,
then the wait until the flow's log node has written one row per message."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
import asyncpg

from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.topology import WORK_EXCHANGE, WORK_ROUTING_KEY

# Published this many at a time with confirms: enough in flight to keep the runtime busy
# without one gather holding every message of the run.
BATCH = 500


async def publish_work(
    connection: aio_pika.abc.AbstractConnection,
    workspace: str,
    flow_id: str,
    count: int,
    payload: Callable[[int], dict[str, Any]],
    node_id: str = "shape",
) -> None:
    """``count`` persistent work messages for ``node_id`` of the flow; message ``n`` carries
    ``payload(n)`` (built at publish time, so a send timestamp in it is the real one). The caller
    connects, so that connecting stays out of the time it measures."""
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(WORK_EXCHANGE)
    for offset in range(0, count, BATCH):
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        WorkMessage(
                            workspace=workspace,
                            flow_id=flow_id,
                            node_id=node_id,
                            payload=payload(n),
                        )
                        .model_dump_json()
                        .encode(),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=WORK_ROUTING_KEY,
                )
                for n in range(offset, min(offset + BATCH, count))
            )
        )


async def wait_for_node_logs(
    database: asyncpg.Connection, flow_id: str, count: int, poll_seconds: float
) -> int:
    """Polls until the flow has ``count`` node log rows or 10 minutes pass; the rows it saw
    (fewer than ``count`` means messages were lost or the runtime fell behind)."""
    deadline = time.perf_counter() + 600
    logged = 0
    while logged < count and time.perf_counter() < deadline:
        await asyncio.sleep(poll_seconds)
        logged = await database.fetchval(
            "SELECT count(*) FROM node_logs WHERE flow_id = $1", uuid.UUID(flow_id)
        )
    return logged
