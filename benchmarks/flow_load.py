"""Load the runtime's benchmarks push through a flow: messages straight onto the work exchange,
then the wait until the flow's log node has written one row per message."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from benchmarks.process_stats import cpu_seconds
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.engine.topology import WORK_EXCHANGE, WORK_ROUTING_KEY

# Published this many at a time with confirms: enough in flight to keep the runtime busy
# without one gather holding every message of the run.
BATCH = 500
#: Seconds without a new node log row after which a wait gives up (a run that stopped moving).
STALL_SECONDS = 30.0


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


class FlowStalled(RuntimeError):
    """The flow stopped making progress, or gave up on messages: waiting longer would hide it."""


async def wait_for_node_logs(
    database: asyncpg.Connection,
    flow_id: str,
    count: int,
    poll_seconds: float,
    *,
    stall_seconds: float = STALL_SECONDS,
) -> int:
    """Polls until the flow has ``count`` node log rows; the rows it saw.

    Raises :class:`FlowStalled` as soon as a message of the flow lands in the unprocessed store
    (the run can no longer complete, e.g. the egress policy refused a node's call) or no new row
    appears for ``stall_seconds`` (the runtime died or fell silent), naming what it saw, instead
    of waiting for a deadline."""
    flow = uuid.UUID(flow_id)
    logged = 0
    last_progress = time.perf_counter()
    while logged < count:
        await asyncio.sleep(poll_seconds)
        now_logged = await database.fetchval(
            "SELECT count(*) FROM node_logs WHERE flow_id = $1", flow
        )
        given_up = await database.fetch(
            """SELECT node_id, reason, errors FROM unprocessed_messages
                WHERE flow_id = $1 ORDER BY created_at LIMIT 1""",
            flow,
        )
        if given_up:
            first = given_up[0]
            total = await database.fetchval(
                "SELECT count(*) FROM unprocessed_messages WHERE flow_id = $1", flow
            )
            raise FlowStalled(
                f"{total} message(s) of flow {flow_id} went to the unprocessed store "
                f"({now_logged}/{count} logged); the first, at node {first['node_id']!r} "
                f"({first['reason']}): {str(first['errors'])[:500]}"
            )
        if now_logged > logged:
            logged, last_progress = now_logged, time.perf_counter()
        elif time.perf_counter() - last_progress > stall_seconds:
            raise FlowStalled(
                f"flow {flow_id}: no node log row for {stall_seconds:.0f} s "
                f"({logged}/{count} logged); is the runtime alive?"
            )
    return logged


def _pids_of(command: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    pids.append(int(entry.name))
            except OSError:  # gone meanwhile
                continue
    return pids


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    cpu = {}
    for pid in pids:
        try:
            cpu[pid] = cpu_seconds(pid)
        except OSError:  # ended meanwhile
            continue
    return cpu


@dataclass
class CpuSplit:
    """CPU seconds used between :meth:`start` and :meth:`stop` by the benchmarked service
    processes, RabbitMQ (``beam.smp``) and PostgreSQL: the backends of the run's database (the
    runtime's pool keeps its connections; one opened during the run counts whole) plus the shared
    WAL writer, checkpointer and background writer.

    The broker and the shared writers also serve whatever else runs on the machine: on a busy
    machine their share is an upper bound."""

    service_pids: list[int]
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    async def _sample(self, database: asyncpg.Connection) -> dict[str, dict[int, float]]:
        rows = await database.fetch(
            "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() "
            "AND pid <> pg_backend_pid()) "
            "OR backend_type IN ('walwriter', 'checkpointer', 'background writer')"
        )
        return {
            "runtime": _cpu_by_pid(self.service_pids),
            "rabbitmq": _cpu_by_pid(_pids_of("beam.smp")),
            "postgres": _cpu_by_pid([row["pid"] for row in rows]),
        }

    async def start(self, database: asyncpg.Connection) -> None:
        self._before = await self._sample(database)

    async def stop(self, database: asyncpg.Connection) -> dict[str, float]:
        after = await self._sample(database)
        self.used = {
            # A process gone by the end is left out (its last figures are unknown).
            name: sum(cpu - self._before[name].get(pid, 0.0) for pid, cpu in pids.items())
            for name, pids in after.items()
        }
        return self.used

    def per_execution_ms(self, executions: int) -> dict[str, float | None]:
        """Milliseconds of CPU per node execution, per party and in total."""
        split: dict[str, float | None] = {
            f"{name}_cpu_ms_per_execution": round(seconds * 1000 / executions, 3)
            if executions
            else None
            for name, seconds in self.used.items()
        }
        split["total_cpu_ms_per_execution"] = (
            round(sum(self.used.values()) * 1000 / executions, 3) if executions else None
        )
        return split
