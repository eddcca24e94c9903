"""Faulty cells behind the gateway, with the five services as processes: a cell that is slow, one
killed (SIGKILL) while it handles a request, and one that answers twice. Every request is
accounted for: its caller got its own answer, or a clear error; never another caller's answer.

The gateway waits ``TIMEOUT`` s for a cell (``MODYARD_APPCELL_GATEWAY_REQUEST_TIMEOUT_SECONDS``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_cells import SLOW_SECONDS
from fault_cluster import (
    Cluster,
    InstalledCell,
    cell_process,
    fault_cluster,
    install_example_cell,
    remove_cell,
)

from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually

pytestmark = pytest.mark.infra

TIMEOUT = 4.0
WS = "faulty"
REPLIES_EXCHANGE = "appcell.replies"
assert SLOW_SECONDS > TIMEOUT


class Faults:
    def __init__(self, cluster: Cluster, cell: InstalledCell, credentials_file: Path) -> None:
        self.cluster = cluster
        self.cell = cell
        self.credentials_file = credentials_file

    async def fetch(self, client: httpx.AsyncClient, domain: str) -> httpx.Response:
        return await client.post(
            f"{self.cluster.url('appcell-gateway')}/v1/cells/{self.cell.key}"
            "/plugins/NewResellerClub/actions/fetch",
            json={"payload": {"domain": domain}},
            headers=self.cluster.operator,
        )

    def gateway_log(self, event: str) -> list[dict[str, Any]]:
        lines = self.cluster.processes["appcell-gateway"].logs().splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [line for line in found if line.get("event") == event]


@pytest.fixture(scope="module")
async def faults(
    infra: IsolatedInfra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Faults]:
    env = {"appcell-gateway": {"MODYARD_APPCELL_GATEWAY_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT)}}
    async with fault_cluster(infra, env) as cluster:
        cell = await install_example_cell(cluster, WS, "rc")
        credentials_file = tmp_path_factory.mktemp("cell") / "credentials.json"
        credentials_file.write_text(json.dumps(cell.credentials))
        try:
            yield Faults(cluster, cell, credentials_file)
        finally:
            await remove_cell(cluster, WS, "rc")


def assert_own_answers(domains: list[str], answers: list[httpx.Response]) -> None:
    for domain, answer in zip(domains, answers, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == {"domain": domain, "status": "active"}


async def test_a_slow_cell_is_a_504_and_its_late_answer_reaches_nobody(faults: Faults) -> None:
    discarded_before = len(faults.gateway_log("late_reply_discarded"))
    async with (
        cell_process(faults.credentials_file, "echo"),
        httpx.AsyncClient(timeout=30) as client,
    ):
        slow = await faults.fetch(client, "slow-1.com")
        assert slow.status_code == 504, slow.text
        assert slow.json()["type"].endswith("/cell-timeout")
        # Callers while the late answer is on its way get theirs, never the slow one's.
        domains = [f"after-slow-{n}.com" for n in range(20)]
        answers = await asyncio.gather(*(faults.fetch(client, domain) for domain in domains))
        assert_own_answers(domains, answers)

        async def discarded() -> bool:
            return len(faults.gateway_log("late_reply_discarded")) > discarded_before

        await eventually(discarded, timeout=SLOW_SECONDS + 5)
        domains = [f"later-{n}.com" for n in range(5)]
        assert_own_answers(
            domains, await asyncio.gather(*(faults.fetch(client, d) for d in domains))
        )


async def test_a_cell_killed_mid_request_leaves_it_to_a_replica(
    faults: Faults, tmp_path: Path
) -> None:
    """The cell acknowledges a request after answering it, so a cell killed while handling one
    leaves it unacknowledged: the broker redelivers it to another consumer of the queue (a
    replica, or the cell restarted) and the caller gets that answer, if it comes within the
    gateway's timeout. Otherwise the caller gets 504 and the request expires in the queue
    (its TTL is the timeout): a cell that comes back later does not run it for nobody."""
    marker = tmp_path / "taken"
    env = {"MODYARD_FAULT_MARKER": str(marker)}
    async with (
        cell_process(faults.credentials_file, "echo", env) as first,
        cell_process(faults.credentials_file, "echo", env) as second,
        httpx.AsyncClient(timeout=30) as client,
    ):
        calling = asyncio.create_task(faults.fetch(client, "crash-1.com"))
        await eventually(marker.exists, timeout=TIMEOUT)
        pid, request_id = marker.read_text().split(":")
        taken_by, survivor = (first, second) if first.process.pid == int(pid) else (second, first)
        await taken_by.kill()
        answer = await calling
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == {"domain": "crash-1.com", "status": "active"}

        def redelivered() -> list[bool]:
            handled = survivor.events("request_handled")
            return [line["redelivered"] for line in handled if line["request_id"] == request_id]

        # Its log line follows the answer: wait for it, then check it ran once, redelivered.
        await eventually(lambda: bool(redelivered()), timeout=10)
        assert redelivered() == [True]
        # The queue's other requests are unaffected.
        domains = [f"after-crash-{n}.com" for n in range(10)]
        assert_own_answers(
            domains, await asyncio.gather(*(faults.fetch(client, d) for d in domains))
        )

        # No replica: the caller learns it (504) instead of waiting; the request expires.
        marker.unlink()
        calling = asyncio.create_task(faults.fetch(client, "crash-2.com"))
        await eventually(marker.exists, timeout=TIMEOUT)
        taken = marker.read_text().split(":")[1]
        await survivor.kill()
        timed_out = await calling
        assert timed_out.status_code == 504, timed_out.text
        assert timed_out.json()["type"].endswith("/cell-timeout")
    async with (
        cell_process(faults.credentials_file, "echo", env) as restarted,
        httpx.AsyncClient(timeout=30) as client,
    ):
        assert_own_answers(["back.com"], [await faults.fetch(client, "back.com")])
        ran = [line["request_id"] for line in restarted.events("request_handled")]
        assert taken not in ran


async def test_a_cell_answering_twice_confuses_nobody(faults: Faults) -> None:
    """The first answer goes to the caller; the second finds nobody waiting and is dropped."""
    credentials = faults.cell.credentials
    connection = await aio_pika.connect(credentials["amqp_url"])
    answered: list[str] = []

    async def twice(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        request = json.loads(message.body)
        domain = request["payload"]["domain"]
        answered.append(domain)
        channel = await connection_channel.get_underlay_channel()
        for prefix in ("", "second-"):
            await channel.basic_publish(
                json.dumps({"result": {"domain": prefix + domain, "status": "active"}}).encode(),
                exchange=REPLIES_EXCHANGE,
                routing_key=message.reply_to or "",
                properties=aiormq.spec.Basic.Properties(
                    content_type="application/json",
                    correlation_id=message.correlation_id,
                    user_id=credentials["username"],
                ),
            )
        await message.ack()

    discarded_before = len(faults.gateway_log("late_reply_discarded"))
    try:
        connection_channel = await connection.channel()
        queue = await connection_channel.declare_queue(credentials["queue"], passive=True)
        await queue.consume(twice)
        async with httpx.AsyncClient(timeout=30) as client:
            domains = [f"twice-{n}.com" for n in range(30)]
            answers = await asyncio.gather(*(faults.fetch(client, d) for d in domains))
            assert_own_answers(domains, answers)
            assert sorted(answered) == sorted(domains)

            async def all_discarded() -> bool:
                found = len(faults.gateway_log("late_reply_discarded")) - discarded_before
                return found == len(domains)

            await eventually(all_discarded, timeout=10)
    finally:
        await connection.close()
    # The second answers were dropped, not kept for anyone: a well-behaved cell now answers.
    async with (
        cell_process(faults.credentials_file, "echo"),
        httpx.AsyncClient(timeout=30) as client,
    ):
        domains = [f"after-twice-{n}.com" for n in range(10)]
        assert_own_answers(
            domains, await asyncio.gather(*(faults.fetch(client, d) for d in domains))
        )
