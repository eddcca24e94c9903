"""Cells as the installer's events make them: AMQP ingress, broker isolation between cells,
removal, install-time checks, and the UI controller and slots."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aio_pika
import aiormq
import httpx
import pytest
from gateway_env import WS, Env

from examples.resellerclub_cell.cell import cell as example_cell
from examples.resellerclub_cell.module_archive import module_zip
from modyard.appcell_gateway.dispatch import INGRESS_EXCHANGE
from modyard.testing.polling import eventually

pytestmark = pytest.mark.infra

RC = f"{WS}:rc"


async def _ingress(
    env: Env, body: dict[str, Any], headers: dict[str, Any], message_id: str | None = None
) -> tuple[Any, Any]:
    """Publish like a billing system and wait for the answer on an exclusive reply queue."""
    connection = await aio_pika.connect(env.infra.amqp_url)
    try:
        channel = await connection.channel()
        replies = await channel.declare_queue(exclusive=True)
        exchange = await channel.get_exchange(INGRESS_EXCHANGE)
        correlation_id = uuid.uuid4().hex
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                correlation_id=correlation_id,
                message_id=message_id,
                reply_to=replies.name,
                headers=headers,
                content_type="application/json",
            ),
            routing_key="billia",
        )
        async with replies.iterator(timeout=10) as messages:
            async for message in messages:
                await message.ack()
                assert message.correlation_id == correlation_id
                return json.loads(message.body), (message.headers or {}).get("status")
    finally:
        await connection.close()
    raise AssertionError("no answer")


async def test_amqp_ingress_runs_the_same_pipeline(env: Env) -> None:
    token = env.token()["Authorization"]
    body, status = await _ingress(
        env,
        {
            "installation": RC,
            "plugin": "NewResellerClub",
            "action": "create",
            "payload": {"domain": "over-amqp.com", "years": 1},
        },
        {"authorization": token},
    )
    assert status == 200
    assert body["status"] == "success"
    assert body["result"]["domain"] == "over-amqp.com"
    invalid, status = await _ingress(
        env,
        {"installation": RC, "plugin": "NewResellerClub", "action": "create", "payload": {}},
        {"authorization": token},
    )
    assert status == 422
    assert {e["pointer"] for e in invalid["errors"]} == {"/payload"}
    refused, status = await _ingress(
        env,
        {"installation": RC, "plugin": "NewResellerClub", "action": "fetch", "payload": {}},
        {},
    )
    assert status == 401
    assert refused["type"].endswith("/unauthorized")
    garbled, status = await _ingress(env, {"plugin": 3}, {"authorization": token})
    assert status == 422
    assert "/installation" in {e["pointer"] for e in garbled["errors"]}
    logged = await env.client.get(
        "/v1/requests", params={"cell": RC, "status": "success"}, headers=env.operator
    )
    assert any(item["ingress"] == "amqp" for item in logged.json()["items"])


async def test_an_ingress_request_sent_again_with_its_message_id_runs_once(env: Env) -> None:
    token = env.token()["Authorization"]
    request = {
        "installation": RC,
        "plugin": "NewResellerClub",
        "action": "create",
        "payload": {"domain": "sent-twice.com", "years": 1},
    }
    message_id = uuid.uuid4().hex
    first, status = await _ingress(env, request, {"authorization": token}, message_id)
    assert status == 200, first
    again, status = await _ingress(env, request, {"authorization": token}, message_id)
    assert status == 200, again  # not 'already registered': the cell answered from its memory
    assert again == first
    fresh, status = await _ingress(env, request, {"authorization": token}, uuid.uuid4().hex)
    assert status == 409, fresh  # another message is another request


async def _ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.nack()


async def test_a_cell_cannot_touch_another_cells_queue_and_removal_revokes_it(env: Env) -> None:
    await env.install("rc2")
    await env.wait_status(f"{WS}:rc2", "ready")
    mine = await env.credentials(RC)
    theirs = await env.credentials(f"{WS}:rc2")
    assert mine["queue"] != theirs["queue"]
    assert mine["username"] != theirs["username"]

    connection = await aio_pika.connect(mine["amqp_url"])
    try:
        channel = await connection.channel()
        # Checking that the queue exists is allowed; reading from it is not.
        other = await channel.declare_queue(theirs["queue"], passive=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await other.consume(_ignore)
        channel = await connection.channel()
        own = await channel.declare_queue(mine["queue"], passive=True)
        assert own.name == mine["queue"]
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            # Nor can it route the billing system's requests to itself.
            await own.bind(INGRESS_EXCHANGE, routing_key="#")
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            # Requests cannot be injected either: the default exchange is not the cell's to use.
            await channel.default_exchange.publish(
                aio_pika.Message(b"{}"), routing_key=theirs["queue"]
            )
    finally:
        await connection.close()

    # The other cell works with its own credentials, until its installation is removed.
    worker = await env.run_cell(f"{WS}:rc2", example_cell)
    answered = await env.call("fetch.NS", {"domain": "nowhere.com"}, cell=f"{WS}:rc2")
    assert answered.status_code == 404  # the cell answered: the vendor has no such domain
    removed = await env.external("DELETE", f"{env.installer}/v1/workspaces/{WS}/installations/rc2")
    assert removed.status_code == 204, removed.text
    await env.wait_status(f"{WS}:rc2", "gone")

    async def disconnected() -> bool:
        """The broker closed the removed cell's connections (its worker is still running)."""
        async with httpx.AsyncClient(
            base_url=env.infra.management_url, auth=(env.infra.amqp_user, env.infra.amqp_password)
        ) as management:
            connections = (
                await management.get(f"/api/vhosts/{env.infra.vhost}/connections")
            ).json()
        return not any(c.get("user") == theirs["username"] for c in connections)

    await eventually(disconnected, timeout=20)
    assert worker.handled == 1
    await env.stop_cell(f"{WS}:rc2")
    with pytest.raises(aio_pika.exceptions.ProbableAuthenticationError):
        await aio_pika.connect(theirs["amqp_url"])
    gone = await env.call("fetch", {"domain": "x.com"}, cell=f"{WS}:rc2")
    assert gone.status_code == 404
    assert gone.json()["type"].endswith("/cell-not-found")
    credentials = await env.client.get(f"/v1/cells/{WS}:rc2/credentials", headers=env.operator)
    assert credentials.status_code == 404


async def test_credentials_are_for_operators_only(env: Env) -> None:
    response = await env.client.get(
        f"/v1/cells/{RC}/credentials", headers=env.token(roles=("service",))
    )
    assert response.status_code == 403


async def test_a_plugin_missing_an_action_it_implements_is_refused_at_install(env: Env) -> None:
    def without_availability(documents: dict[str, dict[str, Any]]) -> None:
        actions = documents["plugin.json"]["plugin"]["NewResellerClub"]["actions"]
        del actions["checkAvailability"]

    # A new major version, so that the installation on 1.x does not follow it.
    await env.publish(module_zip(version="2.0.0", edit=without_availability))
    await env.install("lacking", version="2.0.0")
    await env.wait_status(f"{WS}:lacking", "invalid")
    cell = (await env.client.get(f"/v1/cells/{WS}:lacking", headers=env.operator)).json()
    assert "availability.schema" in cell["error"]
    assert "checkAvailability" in cell["error"]
    refused = await env.call("fetch", {"domain": "a.com"}, cell=f"{WS}:lacking")
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/cell-not-ready")
    assert "checkAvailability" in refused.json()["detail"]


async def test_the_ui_controller_calls_the_cells_action_for_a_product(env: Env) -> None:
    await env.call("create", {"domain": "dashboard.com", "years": 1})
    response = await env.client.post(
        "/v1/ui/newresellerclub/fetch",
        params={"customerProductId": "cp-7"},
        json={"domain": "dashboard.com"},
        headers=env.token(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"]["domain"] == "dashboard.com"
    public = await env.client.post(
        "/v1/ui/newresellerclub/checkAvailability",
        params={"customerProductId": "cp-7"},
        json={"domain": "dashboard.com"},
        headers=env.token(products=("cp-8",)),
    )
    assert public.status_code == 403
    unknown = await env.client.get("/v1/ui/nothing-here/fetch", headers=env.token())
    assert unknown.status_code == 404
    missing = await env.client.get("/v1/ui/newresellerclub/explode", headers=env.token())
    assert missing.status_code == 404
    logged = await env.client.get("/v1/requests", params={"cell": RC}, headers=env.operator)
    assert any(item["ingress"] == "ui" for item in logged.json()["items"])


async def test_slots_list_bundles_with_their_dependencies_first(env: Env) -> None:
    response = await env.client.get(
        "/v1/ui/slots/product-dashboard",
        params={"product": "NewResellerClub", "workspace": WS},
        headers=env.token(),
    )
    assert response.status_code == 200, response.text
    bundles = response.json()["bundles"]
    kinds = [bundle["kind"] for bundle in bundles]
    assert kinds[:2] == ["dependency", "dependency"]
    assert set(kinds[2:]) == {"module"}
    assert [b["name"] for b in bundles[:2]] == ["newresellerclub-shared", "appcell-ui-kit"]
    assert bundles[2]["url"].endswith("newresellerclub-product-dashboard.js")
    assert bundles[2]["path"] == "schema/ui/newresellerclub-product-dashboard.js"
    other = await env.client.get(
        "/v1/ui/slots/product-dashboard", params={"product": "Other"}, headers=env.token()
    )
    assert other.json()["bundles"] == []
    empty = await env.client.get("/v1/ui/slots/dashboard", headers=env.token())
    assert empty.json()["bundles"] == []


async def test_a_request_the_broker_cannot_route_is_a_503(env: Env) -> None:
    given = await env.credentials(RC)
    await env.stop_cell(RC)
    queue = f"/api/queues/{env.infra.vhost}/{given['queue']}"
    async with httpx.AsyncClient(
        base_url=env.infra.management_url, auth=(env.infra.amqp_user, env.infra.amqp_password)
    ) as management:
        assert (await management.delete(queue)).status_code == 204
        try:
            response = await env.call("fetch", {"domain": "nowhere.com"})
            assert response.status_code == 503
            assert response.json()["type"].endswith("/cell-unavailable")
            assert response.headers["retry-after"] == "2"
        finally:
            await management.put(queue, json={"durable": True, "arguments": {}})
    await env.run_cell(RC, example_cell)
