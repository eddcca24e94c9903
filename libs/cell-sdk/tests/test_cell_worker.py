"""The cell SDK's worker core on the real broker: both adapters (gateway cells, runtime module
workers), the redelivery policy, concurrency and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from modyard.cell import (
    Cell,
    ComponentCall,
    Conflict,
    ModuleWorker,
    VendorUnavailable,
    WorkerOptions,
    load_target,
)
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra


class Caller:
    """Publishes requests the way the gateway and the runtime do and collects the replies."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self.connection = connection
        self.replies: dict[str, list[Any]] = {}
        self.queue_name = ""
        self._arrived = asyncio.Event()

    async def start(self) -> None:
        channel = await self.connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        self.queue_name = queue.name
        self.channel = channel

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.replies.setdefault(message.correlation_id or "", []).append(
                json.loads(message.body)
            )
            self._arrived.set()

        await queue.consume(on_reply, no_ack=True)

    async def send(
        self,
        routing_key: str,
        body: dict[str, Any],
        *,
        exchange: str = "",
        message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> str:
        correlation_id = correlation_id or uuid.uuid4().hex
        target = (
            await self.channel.get_exchange(exchange) if exchange else self.channel.default_exchange
        )
        await target.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                correlation_id=correlation_id,
                message_id=message_id or uuid.uuid4().hex,
                reply_to=self.queue_name,
            ),
            routing_key=routing_key,
        )
        return correlation_id

    async def wait(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while sum(len(v) for v in self.replies.values()) < count:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def caller(infra: IsolatedInfra) -> AsyncIterator[Caller]:
    connection = await aio_pika.connect(infra.amqp_url)
    found = Caller(connection)
    await found.start()
    yield found
    await connection.close()


async def _cell_queue(caller: Caller) -> str:
    """A queue like the one the gateway declares for an installation."""
    name = f"test.cell.{uuid.uuid4().hex[:8]}"
    await caller.channel.declare_queue(name, durable=False, auto_delete=False)
    return name


# -- cells ----------------------------------------------------------------------------------------

calls: list[str] = []
cell = Cell("testCell")


@cell.action("Domain", "create")
async def create(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    calls.append(payload["domain"])
    if payload["domain"] == "taken.com":
        raise Conflict("taken.com is registered already")
    if payload["domain"] == "down.com":
        raise VendorUnavailable("the vendor is down")
    if payload["domain"] == "slow.com":
        await asyncio.sleep(0.5)
    return {"domain": payload["domain"], "user": settings["userid"]}


@cell.action("Domain", "fetch")
def fetch_in_a_thread(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    time.sleep(0.01)  # a blocking vendor SDK: the worker runs it in a thread
    return {"domain": payload["domain"]}


@cell.action("Domain", "explode")
async def explode(payload: Any, settings: Any) -> Any:
    raise RuntimeError("boom")


def _request(action: str, domain: str) -> dict[str, Any]:
    return {
        "action": action,
        "resource": "Domain",
        "payload": {"domain": domain},
        "settings": {"userid": "reseller"},
    }


async def test_a_cell_answers_results_and_typed_errors(
    infra: IsolatedInfra, caller: Caller
) -> None:
    queue = await _cell_queue(caller)
    worker = cell.worker(WorkerOptions(amqp_url=infra.amqp_url, queue=queue))
    await worker.start()
    try:
        ok = await caller.send(queue, _request("create", "new.com"))
        taken = await caller.send(queue, _request("create", "taken.com"))
        down = await caller.send(queue, _request("create", "down.com"))
        threaded = await caller.send(queue, _request("fetch", "t.com"))
        unknown = await caller.send(queue, _request("delete", "t.com"))
        broken = await caller.send(queue, _request("explode", "t.com"))
        await caller.wait(6)
    finally:
        await worker.stop()
    assert caller.replies[ok] == [{"result": {"domain": "new.com", "user": "reseller"}}]
    assert caller.replies[taken][0]["error"]["status"] == 409
    assert caller.replies[down][0]["error"] == {
        "message": "the vendor is down",
        "status": 503,
        "retryable": True,
    }
    assert caller.replies[threaded] == [{"result": {"domain": "t.com"}}]
    assert caller.replies[unknown][0]["error"]["status"] == 501
    assert caller.replies[broken][0]["error"]["message"] == "RuntimeError: boom"


async def test_a_repeated_request_is_answered_again_without_running_twice(
    infra: IsolatedInfra, caller: Caller
) -> None:
    queue = await _cell_queue(caller)
    worker = cell.worker(WorkerOptions(amqp_url=infra.amqp_url, queue=queue))
    await worker.start()
    request_id = uuid.uuid4().hex
    before = calls.count("once.com")
    try:
        first = await caller.send(queue, _request("create", "once.com"), message_id=request_id)
        await caller.wait(1)
        second = await caller.send(queue, _request("create", "once.com"), message_id=request_id)
        await caller.wait(2)
    finally:
        await worker.stop()
    assert calls.count("once.com") - before == 1
    assert caller.replies[first] == caller.replies[second]


async def test_stopping_finishes_the_requests_in_flight(
    infra: IsolatedInfra, caller: Caller
) -> None:
    queue = await _cell_queue(caller)
    worker = cell.worker(WorkerOptions(amqp_url=infra.amqp_url, queue=queue, concurrency=2))
    await worker.start()
    sent = [await caller.send(queue, _request("create", "slow.com")) for _ in range(4)]

    async def busy() -> None:
        while worker.in_flight < 4:  # noqa: ASYNC110 - polling a plain counter
            await asyncio.sleep(0.01)

    await asyncio.wait_for(busy(), 5)
    started = time.monotonic()
    await worker.stop()
    # Four half-second requests, two at a time: about a second, all answered.
    assert time.monotonic() - started >= 0.9
    await caller.wait(4)
    assert all(caller.replies[c][0]["result"]["domain"] == "slow.com" for c in sent)
    # After the stop nothing consumes: a new request stays queued.
    await caller.send(queue, _request("create", "later.com"))
    await asyncio.sleep(0.3)
    declared = await caller.channel.declare_queue(queue, passive=True)
    assert declared.declaration_result.message_count == 1


# -- module workers for the runtime's amqp executor -------------------------------------------------

module = ModuleWorker(f"echo-{uuid.uuid4().hex[:6]}")


async def installation_queue(caller: Caller) -> str:
    """The queue the runtime declares for an installation's worker (worker_access)."""
    queue = f"modyard.modules.{uuid.uuid4()}"
    await caller.channel.declare_queue(queue, durable=True)
    return queue


@module.component("Echo")
async def echo(payload: Any, call: ComponentCall) -> Any:
    if payload == "fail":
        raise VendorUnavailable("try later")
    return {"echo": payload, "prefix": call.properties.get("prefix"), "key": call.config.get("key")}


attempts: dict[str, int] = {}


@module.component("Flaky")
async def flaky(payload: Any, call: ComponentCall) -> Any:
    attempts[call.message_id] = attempts.get(call.message_id, 0) + 1
    if attempts[call.message_id] == 1:
        raise VendorUnavailable("try later")
    return {"attempt": attempts[call.message_id]}


@module.component("Split")
def split(payload: list[Any], call: ComponentCall) -> dict[str, list[Any]]:
    return {"even": [n for n in payload if n % 2 == 0], "odd": [n for n in payload if n % 2]}


async def test_a_module_worker_speaks_the_runtimes_amqp_executor_protocol(
    infra: IsolatedInfra, caller: Caller
) -> None:
    queue = await installation_queue(caller)
    worker = module.worker(WorkerOptions(amqp_url=infra.amqp_url, queue=queue))
    await worker.start()

    def request(component: str, payload: Any) -> dict[str, Any]:
        # What services/runtime/src/modyard/runtime/engine/worker.py sends.
        return {
            "message_id": uuid.uuid4().hex,
            "workspace": "w",
            "flow_id": "f",
            "node_id": "n",
            "installation": "echo",
            "module": module.name,
            "version": "1.0.0",
            "component": component,
            "port": "in",
            "payload": payload,
            "properties": {"prefix": ">"},
            "config": {"key": "k"},
        }

    try:
        echoed = await caller.send(queue, request("Echo", {"n": 1}))
        routed = await caller.send(queue, request("Split", [1, 2, 3]))
        failed = await caller.send(queue, request("Echo", "fail"))
        await caller.wait(3)
    finally:
        await worker.stop()
    assert caller.replies[echoed] == [
        {"outputs": {"out": [{"echo": {"n": 1}, "prefix": ">", "key": "k"}]}}
    ]
    assert caller.replies[routed] == [{"outputs": {"even": [2], "odd": [1, 3]}}]
    assert caller.replies[failed] == [
        {"error": {"message": "try later", "status": 503, "retryable": True}}
    ]


async def test_a_retry_with_the_same_message_id_runs_the_component_again(
    infra: IsolatedInfra, caller: Caller
) -> None:
    """The runtime retries a failed node under the same message id: a failure must not be
    replayed, or no retry could ever succeed."""
    queue = await installation_queue(caller)
    worker = module.worker(WorkerOptions(amqp_url=infra.amqp_url, queue=queue))
    await worker.start()
    message_id = uuid.uuid4().hex
    request = {"message_id": message_id, "component": "Flaky", "port": "in", "payload": 1}
    try:
        first = await caller.send(queue, request, message_id=message_id)
        await caller.wait(1)
        retry = await caller.send(queue, request, message_id=message_id)
        await caller.wait(2)
        again = await caller.send(queue, request, message_id=message_id)
        await caller.wait(3)
    finally:
        await worker.stop()
    assert caller.replies[first][0]["error"]["retryable"] is True
    assert caller.replies[retry] == [{"outputs": {"out": [{"attempt": 2}]}}]
    # A success is remembered: a duplicate of the retry does not run the component a third time.
    assert caller.replies[again] == caller.replies[retry]
    assert attempts[message_id] == 2


def test_load_target_names_a_cell_or_a_module_worker() -> None:
    assert load_target(f"{__name__}:cell") is cell
    with pytest.raises(ValueError, match="module:attribute"):
        load_target("no-colon")
    with pytest.raises(ValueError, match="not a Cell"):
        load_target(f"{__name__}:calls")
