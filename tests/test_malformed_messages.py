"""Malformed AMQP messages on the queues the services consume: each is dead-lettered with a logged
reason (or, on the gateway's ingress, answered with its problem when it says where to) and the
consumer goes on consuming (a good message sent afterwards is handled).

Real processes (the ``cluster`` fixture) on the session's own vhost; the messages are published
straight onto the queues, as a buggy or hostile publisher would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel

from modyard.appcell_gateway.dispatch import INGRESS_DEAD_LETTER_QUEUE, INGRESS_EXCHANGE
from modyard.common.bus import topology
from modyard.common.bus.envelope import new_event
from modyard.common.settings import CommonSettings
from modyard.runtime.engine.topology import WORK_DEAD_LETTER_QUEUE, WORK_EXCHANGE, WORK_ROUTING_KEY
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import SERVICE_PACKAGES, ServiceProcess, auth_headers

pytestmark = pytest.mark.infra

#: 4 MiB: far above any real message, below RabbitMQ's default max_message_size (16 MiB).
HUGE = b'{"specversion": "1.0", "data": "' + b"x" * (4 * 1024 * 1024) + b'"}'

MALFORMED: dict[str, bytes] = {
    "not-json": b"this is not JSON {",
    "not-utf8": b"\xff\xfe\x00garbage",
    "wrong-shape": json.dumps({"hello": "world", "id": 42}).encode(),
    "json-array": b"[1, 2, 3]",
    "huge": HUGE,
}


@pytest.fixture
async def channel(infra: IsolatedInfra) -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(infra.amqp_url)
    async with connection:
        yield await connection.channel(publisher_confirms=True)


async def drain(channel: AbstractChannel, queue_name: str) -> dict[str, aio_pika.IncomingMessage]:
    """Every message on ``queue_name`` (acknowledged, so the queue is left empty), by id."""
    queue = await channel.declare_queue(queue_name, passive=True)
    found: dict[str, aio_pika.IncomingMessage] = {}
    while (message := await queue.get(fail=False, timeout=5)) is not None:
        await message.ack()
        found[message.message_id or ""] = message  # type: ignore[assignment]
    return found


async def test_event_queues_dead_letter_malformed_messages_and_keep_consuming(
    cluster: dict[str, ServiceProcess],
    channel: AbstractChannel,
    infra_settings: CommonSettings,
) -> None:
    sent: dict[str, list[str]] = {}
    for service in SERVICE_PACKAGES:
        sent[service] = []
        for kind, body in MALFORMED.items():
            message_id = f"malformed-{kind}-{uuid.uuid4().hex[:8]}"
            sent[service].append(message_id)
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=message_id, content_type="application/json"),
                routing_key=topology.events_queue(service),
            )

    # A good event afterwards: every service's consumer must still be there to record it.
    headers = auth_headers(infra_settings)
    async with httpx.AsyncClient(base_url=cluster["registry"].url, headers=headers) as registry:
        ping = (await registry.post("/v1/diagnostics/pings")).json()["ping_id"]

    async def received(service: str) -> bool:
        async with httpx.AsyncClient(base_url=cluster[service].url, headers=headers) as client:
            receipts = (await client.get(f"/v1/diagnostics/pings/{ping}")).json()["receipts"]
            return len(receipts) == 1

    for service in SERVICE_PACKAGES:
        await eventually(lambda service=service: received(service), timeout=30)

    for service in SERVICE_PACKAGES:
        dead = await drain(channel, topology.dead_letter_queue(service))
        assert set(sent[service]) <= set(dead), (service, sorted(dead))
        for message_id in sent[service]:
            assert dead[message_id].headers["x-death"][0]["reason"] == "rejected"  # type: ignore[index]
        logs = cluster[service].logs()
        assert "event_rejected" in logs, service
        for message_id in sent[service]:
            assert f'"message_id": "{message_id}"' in logs, service


async def test_runtime_work_queue_files_malformed_messages_with_a_reason(
    cluster: dict[str, ServiceProcess], channel: AbstractChannel
) -> None:
    malformed = {
        **MALFORMED,
        "flow-id-not-a-uuid": json.dumps(
            {"workspace": "w", "flow_id": "not-a-uuid", "node_id": "n"}
        ).encode(),
    }
    exchange = await channel.get_exchange(WORK_EXCHANGE)
    sent: list[str] = []
    for kind, body in malformed.items():
        message_id = f"malformed-{kind}-{uuid.uuid4().hex[:8]}"
        sent.append(message_id)
        await exchange.publish(
            aio_pika.Message(body, message_id=message_id), routing_key=WORK_ROUTING_KEY
        )
    # A well-formed message afterwards, for a flow that does not exist: the worker drops it
    # (and says so), which it can only do if it is still consuming.
    flow_id = str(uuid.uuid4())
    good = {"workspace": "w", "flow_id": flow_id, "node_id": "n", "message_id": uuid.uuid4().hex}
    await exchange.publish(
        aio_pika.Message(json.dumps(good).encode(), message_id=good["message_id"]),
        routing_key=WORK_ROUTING_KEY,
    )
    runtime = cluster["runtime"]

    await eventually(lambda: flow_id in runtime.logs(), timeout=30)

    dead = await drain(channel, WORK_DEAD_LETTER_QUEUE)
    assert set(sent) <= set(dead), sorted(dead)
    for message_id in sent:
        reason = dead[message_id].headers["x-modyard-rejected-reason"]
        assert str(reason).startswith("not a work message"), reason
        assert f'"message_id": "{message_id}"' in runtime.logs()
    assert dead[sent[0]].body == malformed["not-json"]


async def test_gateway_ingress_answers_malformed_requests_and_dead_letters_unanswerable_ones(
    cluster: dict[str, ServiceProcess], channel: AbstractChannel
) -> None:
    exchange = await channel.get_exchange(INGRESS_EXCHANGE)
    replies = await channel.declare_queue(exclusive=True)
    # With somewhere to answer, a malformed request gets its problem back (the caller is told).
    answered: dict[str, str] = {}
    for kind, body in MALFORMED.items():
        correlation_id = f"{kind}-{uuid.uuid4().hex[:8]}"
        answered[correlation_id] = kind
        await exchange.publish(
            aio_pika.Message(body, correlation_id=correlation_id, reply_to=replies.name),
            routing_key="fuzz",
        )
    # Without reply_to, nobody could be told: the request is dead-lettered, not run.
    unanswerable = f"no-reply-to-{uuid.uuid4().hex[:8]}"
    await exchange.publish(
        aio_pika.Message(
            b'{"installation": "x", "plugin": "p", "action": "a"}', message_id=unanswerable
        ),
        routing_key="fuzz",
    )
    statuses: dict[str, int] = {}
    async with replies.iterator(timeout=30) as messages:
        async for message in messages:
            await message.ack()
            statuses[message.correlation_id or ""] = (message.headers or {})["status"]  # type: ignore[assignment]
            if len(statuses) == len(answered):
                break
    assert set(statuses) == set(answered)
    assert all(400 <= status < 500 for status in statuses.values()), statuses

    # Handled concurrently with the answered ones: it may reach the queue after their answers.
    dead: dict[str, aio_pika.IncomingMessage] = {}

    async def dead_lettered() -> bool:
        dead.update(await drain(channel, INGRESS_DEAD_LETTER_QUEUE))
        return unanswerable in dead

    await eventually(dead_lettered, timeout=30)
    assert "reply_to" in str(dead[unanswerable].headers["x-modyard-rejected-reason"])
    assert f'"message_id": "{unanswerable}"' in cluster["appcell-gateway"].logs()


def concrete_type(pattern: str) -> str:
    """An event type the AMQP topic ``pattern`` matches (``*`` one word, ``#`` any words)."""
    words = [
        ("modyard" if index == 0 else "fuzz") if word in ("*", "#") else word
        for index, word in enumerate(pattern.split("."))
    ]
    while len(words) < 4 and "#" in pattern:
        words.append("fuzz")
    return ".".join(words)


async def test_events_of_subscribed_types_with_wrong_data_never_stop_a_consumer(
    cluster: dict[str, ServiceProcess],
    channel: AbstractChannel,
    infra: IsolatedInfra,
    infra_settings: CommonSettings,
) -> None:
    """Valid envelopes whose ``data`` no handler expects, for every type a service subscribes
    to: each is handled, ignored or (after the delivery limit) dead-lettered, and the queues
    drain; a ping afterwards still reaches every service."""
    events = await channel.get_exchange(topology.EVENTS_EXCHANGE)
    async with httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password)
    ) as api:
        patterns = {
            binding["routing_key"]
            for service in SERVICE_PACKAGES
            for binding in (
                await api.get(
                    f"/api/queues/{infra.vhost}/{topology.events_queue(service)}/bindings"
                )
            ).json()
            if binding["source"] == topology.EVENTS_EXCHANGE
        }
    assert patterns
    for pattern in sorted(patterns):
        for data in ("a string", [1, 2], {"unexpected": {"nested": None}}, None):
            event = new_event(source="fuzz", type=concrete_type(pattern), data=data)
            await events.publish(
                aio_pika.Message(event.to_json_bytes(), message_id=event.id),
                routing_key=event.type,
            )

    headers = auth_headers(infra_settings)
    async with httpx.AsyncClient(base_url=cluster["registry"].url, headers=headers) as registry:
        ping = (await registry.post("/v1/diagnostics/pings")).json()["ping_id"]

    async def settled() -> bool:
        for service in SERVICE_PACKAGES:
            queue = await channel.declare_queue(topology.events_queue(service), passive=True)
            async with httpx.AsyncClient(base_url=cluster[service].url, headers=headers) as client:
                receipts = (await client.get(f"/v1/diagnostics/pings/{ping}")).json()["receipts"]
            if queue.declaration_result.message_count or len(receipts) != 1:
                return False
        return True

    await eventually(settled, timeout=60, interval=0.5)
    for service in SERVICE_PACKAGES:
        await drain(channel, topology.dead_letter_queue(service))
