"""System webhooks: the API, enqueueing with ``notify`` and the documented payloads.

Against the real PostgreSQL (a schema of this module's own); receivers are real HTTP servers on
127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from modyard.common.auth import Role
from modyard.common.db.database import Database
from modyard.common.errors import install_problem_handlers
from modyard.common.observability.middleware import RequestContextMiddleware
from modyard.runtime.settings import RuntimeSettings
from modyard.runtime.webhooks import EVENTS, notify
from modyard.runtime.webhooks.delivery import WebhookDeliverer
from modyard.runtime.webhooks.endpoints import router
from modyard.runtime.webhooks.models import WebhookDelivery
from modyard.runtime.webhooks.payloads import (
    COMPONENT_ERROR,
    EVENT_MODELS,
    EXAMPLES,
    FLOW_STOPPED,
    TRIGGER_FAILING,
    WEBHOOK_TEST,
    FlowStoppedData,
    WebhookPayload,
)
from modyard.runtime.webhooks.service import build_engine_payload, build_payload
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.runtime_webhooks import WebhookReceiver, create_webhook_tables
from modyard.testing.services import auth_headers, free_port

pytestmark = pytest.mark.infra

SECRET = "whsec-0123456789abcdef-never-shown"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "system-webhooks.md"


@dataclass
class Api:
    client: httpx.AsyncClient
    database: Database
    settings: RuntimeSettings
    operator: dict[str, str]

    async def subscribe(self, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/system-webhooks",
            json={"url": url, "events": events, "secret": SECRET, **extra},
            headers=self.operator,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def deliveries(self, webhook_id: str, **params: Any) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/system-webhooks/{webhook_id}/deliveries", params=params, headers=self.operator
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
async def api(infra: IsolatedInfra) -> AsyncIterator[Api]:
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="webhooks_api_test"
    )
    database = Database(settings)
    await create_webhook_tables(database)
    app = FastAPI()
    app.state.settings = settings
    app.state.database = database
    app.state.secrets = settings.secret_box()
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, service="runtime")
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://runtime") as client:
        yield Api(client, database, settings, auth_headers(settings, Role.operator))
    await database.dispose()


@pytest.fixture(autouse=True)
async def empty_tables(api: Api) -> None:
    async with api.database.transaction() as session:
        await session.execute(text("TRUNCATE system_webhooks, webhook_deliveries"))


def flow_stopped() -> FlowStoppedData:
    return FlowStoppedData.model_validate(EXAMPLES[FLOW_STOPPED])


async def test_operator_subscribes_lists_and_reads_a_webhook_without_ever_seeing_the_secret(
    api: Api,
) -> None:
    response = await api.client.post(
        "/v1/system-webhooks",
        json={
            "url": "https://hooks.example.com/modyard",
            "events": [FLOW_STOPPED, COMPONENT_ERROR, FLOW_STOPPED],
            "secret": SECRET,
            "description": "ops pager",
        },
        headers=api.operator,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/v1/system-webhooks/{created['id']}"
    assert created["events"] == [FLOW_STOPPED, COMPONENT_ERROR]
    assert created["secret_set"] is True
    assert created["active"] is True
    assert created["created_by"] == "test"
    assert "secret" not in created

    listed = await api.client.get("/v1/system-webhooks", headers=api.operator)
    one = await api.client.get(f"/v1/system-webhooks/{created['id']}", headers=api.operator)
    assert listed.status_code == one.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [created["id"]]
    assert one.json() == created
    for answer in (response, listed, one):
        assert SECRET not in answer.text


async def test_invalid_url_events_and_secret_are_one_422_problem_with_pointers(api: Api) -> None:
    response = await api.client.post(
        "/v1/system-webhooks",
        json={
            "url": "ftp://files.example.com/in",
            "events": [FLOW_STOPPED, "flow.exploded"],
            "secret": "short",
        },
        headers=api.operator,
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    pointers = {error["pointer"]: error["detail"] for error in problem["errors"]}
    assert set(pointers) == {"/body/url", "/body/events/1", "/body/secret"}
    assert "http" in pointers["/body/url"]
    assert "flow.exploded" in pointers["/body/events/1"]
    assert FLOW_STOPPED in pointers["/body/events/1"]

    for bad in ({"url": "not a url", "events": ["*"]}, {"url": "http:///x", "events": []}):
        answer = await api.client.post(
            "/v1/system-webhooks", json={**bad, "secret": SECRET}, headers=api.operator
        )
        assert answer.status_code == 422, answer.text
        assert "/body/url" in {error["pointer"] for error in answer.json()["errors"]}


async def test_only_operators_manage_system_webhooks(api: Api) -> None:
    user = auth_headers(api.settings, Role.user, workspaces=("acme",))
    forbidden = await api.client.get("/v1/system-webhooks", headers=user)
    anonymous = await api.client.post(
        "/v1/system-webhooks", json={"url": "http://127.0.0.1/", "events": ["*"], "secret": SECRET}
    )
    assert forbidden.status_code == 403
    assert anonymous.status_code == 401
    assert forbidden.json()["type"].endswith("/forbidden")


async def test_deleting_a_webhook_removes_it_and_its_deliveries(api: Api) -> None:
    webhook = await api.subscribe("http://127.0.0.1:9/hooks", ["*"])
    async with api.database.transaction() as session:
        assert await notify(session, FLOW_STOPPED, flow_stopped()) == 1

    deleted = await api.client.delete(f"/v1/system-webhooks/{webhook['id']}", headers=api.operator)
    again = await api.client.delete(f"/v1/system-webhooks/{webhook['id']}", headers=api.operator)
    read = await api.client.get(f"/v1/system-webhooks/{webhook['id']}", headers=api.operator)
    assert deleted.status_code == 204
    assert again.status_code == read.status_code == 404
    assert read.json()["type"].endswith("/not-found")
    async with api.database.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    malformed = await api.client.get("/v1/system-webhooks/not-a-uuid", headers=api.operator)
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["pointer"] == "/path/webhook_id"


async def test_notify_enqueues_one_delivery_per_subscribed_webhook_including_wildcards(
    api: Api,
) -> None:
    stopped = await api.subscribe("http://127.0.0.1:9/a", [FLOW_STOPPED])
    everything = await api.subscribe("http://127.0.0.1:9/b", ["*"])
    errors_only = await api.subscribe("http://127.0.0.1:9/c", [COMPONENT_ERROR])

    async with api.database.transaction() as session:
        count = await notify(session, FLOW_STOPPED, EXAMPLES[FLOW_STOPPED])

    assert count == 2
    first = (await api.deliveries(stopped["id"]))["items"]
    second = (await api.deliveries(everything["id"]))["items"]
    assert (await api.deliveries(errors_only["id"]))["items"] == []
    assert len(first) == len(second) == 1
    delivery = first[0]
    assert delivery["status"] == "pending"
    assert delivery["event"] == FLOW_STOPPED
    assert delivery["attempts"] == 0
    # One event: the same id and body in every webhook's delivery, so receivers can deduplicate.
    assert delivery["event_id"] == second[0]["event_id"] == delivery["payload"]["id"]
    assert delivery["payload"] == second[0]["payload"]
    payload = WebhookPayload.model_validate(delivery["payload"])
    assert payload.event == FLOW_STOPPED
    assert FlowStoppedData.model_validate(payload.data) == flow_stopped()
    assert payload.data["owner"] == "jane@acme.example"
    assert payload.data["affected_components"][0]["node"] == "send-1"


async def test_notify_without_subscribers_is_a_no_op_and_an_unknown_event_is_a_bug(
    api: Api,
) -> None:
    await api.subscribe("http://127.0.0.1:9/a", [TRIGGER_FAILING])
    async with api.database.transaction() as session:
        assert await notify(session, COMPONENT_ERROR, EXAMPLES[COMPONENT_ERROR]) == 0
        with pytest.raises(ValueError, match=r"flow\.exploded"):
            await notify(session, "flow.exploded", {})
        # A payload that misses fields is still sent (a notification never fails the engine).
        assert await notify(session, TRIGGER_FAILING, {"workspace": "acme"}) == 1


async def test_a_webhook_deleted_while_an_event_is_enqueued_is_skipped_not_a_failure(
    api: Api,
) -> None:
    """An operator deletes a subscriber while a change notifies it: the change's transaction
    waits for the delete and commits without that webhook's delivery (a foreign key violation
    would have failed the change)."""
    webhook = await api.subscribe("http://127.0.0.1:9/a", [FLOW_STOPPED])
    async with api.database.transaction() as deleting:
        await deleting.execute(
            text("DELETE FROM system_webhooks WHERE id = :id"), {"id": uuid.UUID(webhook["id"])}
        )

        async def change() -> int:
            async with api.database.transaction() as session:
                return await notify(session, FLOW_STOPPED, flow_stopped())

        changing = asyncio.ensure_future(change())

        async def waiting_for_the_delete() -> bool:
            async with api.database.transaction() as session:
                waits = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                )
            return bool(waits)

        await eventually(waiting_for_the_delete, timeout=10)
    assert await changing == 0


async def test_inactive_webhooks_get_nothing(api: Api) -> None:
    webhook = await api.subscribe("http://127.0.0.1:9/a", ["*"])
    async with api.database.transaction() as session:
        await session.execute(
            text("UPDATE system_webhooks SET active = false WHERE id = :id"),
            {"id": uuid.UUID(webhook["id"])},
        )
    async with api.database.transaction() as session:
        assert await notify(session, FLOW_STOPPED, flow_stopped()) == 0


async def test_notify_in_a_rolled_back_transaction_leaves_no_delivery(api: Api) -> None:
    webhook = await api.subscribe("http://127.0.0.1:9/a", ["*"])

    class FlowStopFailed(Exception):
        pass

    async def stop_flow_then_fail() -> None:
        async with api.database.transaction() as session:
            assert await notify(session, FLOW_STOPPED, flow_stopped()) == 1
            raise FlowStopFailed

    with pytest.raises(FlowStopFailed):
        await stop_flow_then_fail()

    assert (await api.deliveries(webhook["id"]))["items"] == []


async def test_deliveries_are_listed_newest_first_by_page_and_by_status(api: Api) -> None:
    webhook = await api.subscribe("http://127.0.0.1:9/a", ["*"])
    for attempt in range(1, 6):
        async with api.database.transaction() as session:
            data = {**EXAMPLES[COMPONENT_ERROR], "attempt": attempt}
            await notify(session, COMPONENT_ERROR, data)

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await api.deliveries(webhook["id"], **params)
        pages += 1
        seen += [item["payload"]["data"]["attempt"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [5, 4, 3, 2, 1]
    assert len((await api.deliveries(webhook["id"], status="pending"))["items"]) == 5
    assert (await api.deliveries(webhook["id"], status="delivered"))["items"] == []

    bad_status = await api.client.get(
        f"/v1/system-webhooks/{webhook['id']}/deliveries",
        params={"status": "lost"},
        headers=api.operator,
    )
    bad_cursor = await api.client.get(
        f"/v1/system-webhooks/{webhook['id']}/deliveries",
        params={"cursor": "%%%"},
        headers=api.operator,
    )
    assert bad_status.status_code == 422
    assert bad_status.json()["errors"][0]["pointer"] == "/query/status"
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["type"].endswith("/invalid-cursor")


async def test_deliveries_show_each_outcome_and_a_failed_one_can_be_redelivered(
    api: Api,
) -> None:
    async with WebhookReceiver() as receiver:
        webhook = await api.subscribe(receiver.url, [FLOW_STOPPED])
        unreachable = await api.subscribe(f"http://127.0.0.1:{free_port()}/", [FLOW_STOPPED])
        receiver.fail_next(1, status=500)
        async with api.database.transaction() as session:
            await notify(session, FLOW_STOPPED, flow_stopped())
        async with api.database.transaction() as session:
            await notify(session, FLOW_STOPPED, flow_stopped())
        deliverer = WebhookDeliverer(
            api.database, api.settings.secret_box(), max_attempts=1, backoff_base=0.01
        )
        try:
            assert await deliverer.deliver_once() == 4

            outcomes = (await api.deliveries(webhook["id"]))["items"]
            assert sorted(item["status"] for item in outcomes) == ["delivered", "failed"]
            failed = next(item for item in outcomes if item["status"] == "failed")
            delivered = next(item for item in outcomes if item["status"] == "delivered")
            assert failed["last_status_code"] == 500
            assert failed["last_error"].startswith("HTTP 500")
            assert failed["next_attempt_at"] is None
            assert delivered["last_status_code"] == 200
            assert delivered["last_error"] is None
            assert delivered["delivered_at"] is not None
            assert [entry["status_code"] for entry in delivered["attempt_log"]] == [200]

            dead = (await api.deliveries(unreachable["id"], status="failed"))["items"]
            assert len(dead) == 2
            assert dead[0]["last_status_code"] is None
            assert "Connect" in dead[0]["last_error"]

            base = f"/v1/system-webhooks/{webhook['id']}/deliveries"
            retried = await api.client.post(
                f"{base}/{failed['id']}/redeliver", headers=api.operator
            )
            assert retried.status_code == 202, retried.text
            assert retried.json()["status"] == "pending"
            still_pending = await api.client.post(
                f"{base}/{failed['id']}/redeliver", headers=api.operator
            )
            assert still_pending.status_code == 409
            assert await deliverer.deliver_once() == 1
            again = (await api.client.get(f"{base}/{failed['id']}", headers=api.operator)).json()
            assert again["status"] == "delivered"
            assert [entry["status_code"] for entry in again["attempt_log"]] == [500, 200]
            first_try = next(r for r in receiver.requests if r.answered == 500)
            assert len(receiver.requests) == 3
            assert receiver.requests[2].body == first_try.body
            assert receiver.requests[2].headers["x-modyard-delivery"] == failed["id"]
        finally:
            await deliverer.aclose()


async def test_test_endpoint_sends_a_webhook_test_event_to_that_webhook_only(api: Api) -> None:
    async with WebhookReceiver() as receiver:
        webhook = await api.subscribe(receiver.url, [COMPONENT_ERROR])
        other = await api.subscribe("http://127.0.0.1:9/other", ["*"])
        response = await api.client.post(
            f"/v1/system-webhooks/{webhook['id']}/test", headers=api.operator
        )
        assert response.status_code == 202, response.text
        assert response.json()["event"] == WEBHOOK_TEST
        assert (await api.deliveries(other["id"]))["items"] == []
        deliverer = WebhookDeliverer(api.database, api.settings.secret_box())
        try:
            assert await deliverer.deliver_once() == 1
        finally:
            await deliverer.aclose()
        (request,) = receiver.requests
        assert request.headers["x-modyard-event"] == WEBHOOK_TEST
        assert request.json()["data"]["webhook_id"] == webhook["id"]
        assert request.signed_with(SECRET)


def _documented_payloads() -> dict[str, dict[str, Any]]:
    """Each ```json block of the docs that is a delivery body, by its event."""
    found: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```json\n(.*?)\n```", DOCS.read_text(), flags=re.DOTALL):
        document = json.loads(block)
        if isinstance(document, dict) and {"id", "event", "created_at", "data"} <= set(document):
            found[document["event"]] = document
    return found


def test_every_event_is_documented_with_an_example_that_its_model_accepts() -> None:
    documented = _documented_payloads()
    assert set(documented) == {*EVENTS, WEBHOOK_TEST}
    for event, body in documented.items():
        payload = WebhookPayload.model_validate(body)
        assert payload.data == EXAMPLES[event], f"docs and payloads.EXAMPLES differ for {event}"
        EVENT_MODELS[event].model_validate(payload.data)


@pytest.mark.parametrize(
    "error",
    [
        # core.http's 503, as the benchmark's failures send it
        {
            "message": "POST http://127.0.0.1:9/n/10 answered 503 Service Unavailable",
            "retryable": True,
            "status": 503,
            "details": {
                "url": "http://127.0.0.1:9/n/10",
                "body": '{"n": 10}',
                "kind": "http_status",
            },
        },
        # a classified exception: no status, no details
        {"message": "boom", "retryable": False, "status": None, "details": None},
        # details that are not JSON types yet (a tuple, a datetime, a UUID)
        {
            "message": "timeout",
            "retryable": True,
            "status": None,
            "details": {
                "kind": "timeout",
                "hops": ("a", "b"),
                "at": datetime(2026, 1, 2, tzinfo=UTC),
                "id": uuid.UUID(int=7),
            },
        },
    ],
)
@pytest.mark.parametrize("name", ["New leads", None])
@pytest.mark.parametrize("microsecond", [0, 123456])
def test_the_engines_component_error_body_is_the_validated_one(
    error: dict[str, Any], name: str | None, microsecond: int
) -> None:
    """The worker's failures build their notice without the model's validation; subscribers get
    exactly the body build_payload would have made of the same data."""
    data = {
        "workspace": "acme",
        "flow": {"id": str(uuid.UUID(int=1)), "name": name},
        "node": "call",
        "component": "core.http",
        "error": error,
        "attempt": 2,
        "message_id": "ab" * 16,
    }
    at = datetime(2026, 12, 7, 8, 30, 1, microsecond, tzinfo=UTC)
    event_id = uuid.uuid4()
    fast = build_engine_payload(COMPONENT_ERROR, data, event_id=event_id, created_at=at)
    assert fast == build_payload(COMPONENT_ERROR, data, event_id=event_id, created_at=at)
    assert json.dumps(fast) == json.dumps(
        build_payload(COMPONENT_ERROR, data, event_id=event_id, created_at=at)
    )
    WebhookPayload.model_validate(fast)
    EVENT_MODELS[COMPONENT_ERROR].model_validate(fast["data"])
