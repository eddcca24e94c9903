"""Every branch of the request pipeline, over HTTP, against the example cell on the real broker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from gateway_env import WS, Env

from modyard.appcell_gateway.app import create_app
from modyard.sdk.cell import Cell
from modyard.testing.polling import eventually
from modyard.testing.services import in_process

pytestmark = pytest.mark.infra

RC = f"{WS}:rc"


async def test_the_catalogue_lists_plugins_actions_security_and_schemas(env: Env) -> None:
    listed = await env.client.get("/v1/cells", headers=env.operator)
    assert listed.status_code == 200
    assert any(cell["slug"] == "rc" and cell["status"] == "ready" for cell in listed.json())
    cell = (await env.client.get(f"/v1/cells/{RC}", headers=env.operator)).json()
    assert cell["plugins"] == ["NewResellerClub"]
    actions = cell["plugin_actions"]["NewResellerClub"]["actions"]
    assert {"create", "fetch", "checkAvailability", "fetchAll.Contact", "fetch.NS"} <= set(actions)
    availability = actions["checkAvailability"][0]
    assert availability["security"] == "public"
    assert availability["payload"]["path"] == "schema/domain/checkAvailability.payload.json"
    assert availability["payload"]["schema"]["required"] == ["domain"]
    assert actions["transfer"][0]["security"] == "rbac::domains.transfer"
    # getEppCode has no $result of its own: it inherits the resource's RPC action schema.
    assert actions["getEppCode"][0]["result"]["path"] == "schema/domain/eppcode.result.schema.json"
    assert set(cell["resources"]) == {"Domain", "NS", "Contact"}


async def test_a_protected_action_runs_with_the_installation_settings(env: Env) -> None:
    response = await env.call("create", {"domain": "modyard-one.com", "years": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["result"]["domain"] == "modyard-one.com"
    assert body["result"]["status"] == "active"
    assert body["postpayload"] is None
    fetched = await env.call("fetch.NS", {"domain": "modyard-one.com"})
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["result"]["nameservers"]["ns1"] == "ns1.resellerclub.example"


async def test_a_protected_action_needs_a_token(env: Env) -> None:
    response = await env.call("fetch", {"domain": "modyard-one.com"}, headers={})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_an_action_key_with_its_resource_is_found(env: Env) -> None:
    await env.call("create", {"domain": "contacts-kept.com", "years": 1})
    response = await env.call("fetchAll.Contact", {"domain": "contacts-kept.com"})
    assert response.status_code == 200, response.text
    assert {c["type"] for c in response.json()["result"]["contacts"]} == {
        "registrant",
        "admin",
        "tech",
        "billing",
    }


async def test_an_unknown_action_or_plugin_is_a_404_naming_what_exists(env: Env) -> None:
    missing = await env.call("explode", {})
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/action-not-found")
    assert "checkAvailability" in missing.json()["detail"]
    plugin = await env.call("fetch", {}, plugin="Nope")
    assert plugin.status_code == 404
    cell = await env.call("fetch", {}, cell=f"{WS}:nothing")
    assert cell.status_code == 404
    assert cell.json()["type"].endswith("/cell-not-found")


async def test_a_public_action_is_allowed_only_to_the_product_owner(env: Env) -> None:
    owner = env.token(products=("cp-1",))
    allowed = await env.call(
        "checkAvailability", {"domain": "free-name.com"}, headers=owner, customer_product_id="cp-1"
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"]["available"] is True
    stranger = await env.call(
        "checkAvailability",
        {"domain": "free-name.com"},
        headers=env.token(products=("cp-2",)),
        customer_product_id="cp-1",
    )
    assert stranger.status_code == 403
    assert stranger.json()["type"].endswith("/action-forbidden")
    unnamed = await env.call("checkAvailability", {"domain": "free-name.com"}, headers=owner)
    assert unnamed.status_code == 403
    operator = await env.call(
        "checkAvailability",
        {"domain": "free-name.com"},
        headers=env.operator,
        customer_product_id="cp-9",
    )
    assert operator.status_code == 200


async def test_an_rbac_action_needs_the_permission(env: Env) -> None:
    payload = {"domain": "moving-in.net", "auth_code": "secret-code"}
    refused = await env.call("transfer", payload, headers=env.token(permissions=("domains.read",)))
    assert refused.status_code == 403
    assert "domains.transfer" in refused.json()["detail"]
    allowed = await env.call(
        "transfer", payload, headers=env.token(permissions=("domains.transfer",))
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["result"]["status"] == "transferred"


async def test_an_invalid_payload_is_a_422_with_every_error_as_a_pointer(env: Env) -> None:
    response = await env.call(
        "create", {"domain": "NOT A DOMAIN", "years": 0, "nameservers": {"ns1": "ns1.x.com"}}
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/invalid-payload")
    pointers = {error["pointer"] for error in problem["errors"]}
    assert pointers == {
        "/body/payload/domain",
        "/body/payload/years",
        "/body/payload/nameservers",
    }


async def test_a_cell_error_with_a_client_status_passes_through(env: Env) -> None:
    response = await env.call("fetch", {"domain": "never-registered.org"})
    assert response.status_code == 404
    problem = response.json()
    assert problem["type"].endswith("/cell-error")
    assert "never-registered.org" in problem["detail"]


async def test_postpayload_is_rendered_from_the_result(env: Env) -> None:
    await env.call("create", {"domain": "epp-code.com", "years": 1})
    epp = await env.call("getEppCode", {"domain": "epp-code.com"})
    assert epp.status_code == 200, epp.text
    body = epp.json()
    assert body["postpayload"] == {
        "type": "overwrite",
        "data": {"auth_info": body["result"]["auth_info"]},
    }
    assert body["result"]["auth_info"].startswith("EPP-")
    synced = await env.call("synchronize", {"domain": "epp-code.com"})
    assert synced.status_code == 200, synced.text
    result = synced.json()["result"]
    assert synced.json()["postpayload"] == {
        "type": "overwrite",
        "data": {"expires_at": result["expires_at"], "status": "active"},
    }


async def test_settings_come_from_the_installation_at_every_request(env: Env) -> None:
    patch = await env.external(
        "PATCH",
        f"{env.installer}/v1/workspaces/{WS}/installations/rc/config",
        json={"config": {"password": "wrong"}},
    )
    assert patch.status_code == 200, patch.text
    try:

        async def refused() -> bool:
            return (
                await env.call("checkAvailability", {"domain": "x-y.com"}, headers=env.operator)
            ).status_code == 401

        await eventually(refused, timeout=15)
    finally:
        restored = await env.external(
            "PATCH",
            f"{env.installer}/v1/workspaces/{WS}/installations/rc/config",
            json={"config": {"password": "secret"}},
        )
        assert restored.status_code == 200

    async def accepted() -> bool:
        return (
            await env.call("checkAvailability", {"domain": "x-y.com"}, headers=env.operator)
        ).status_code == 200

    await eventually(accepted, timeout=15)


async def test_a_configuration_change_reaches_every_replica_before_its_copy_expires(
    env: Env,
) -> None:
    # Two more gateway processes (in this one) on the same schema and vhost, keeping the cell's
    # settings for five minutes: the installation's ``configured`` event reaches one process of
    # the three through the service's shared queue, and each through its own queue.
    settings = env.settings.model_copy(update={"settings_cache_seconds": 300})
    replicas: list[httpx.AsyncClient] = []

    async def answers(client: httpx.AsyncClient) -> int:
        response = await client.post(
            f"/v1/cells/{RC}/plugins/NewResellerClub/actions/checkAvailability",
            json={"payload": {"domain": "x-y.com"}},
            headers=env.operator,
        )
        return response.status_code

    async def configure(password: str) -> None:
        patched = await env.external(
            "PATCH",
            f"{env.installer}/v1/workspaces/{WS}/installations/rc/config",
            json={"config": {"password": password}},
        )
        assert patched.status_code == 200, patched.text

    async with in_process(create_app(settings)) as one, in_process(create_app(settings)) as two:
        replicas[:] = [one, two]
        for client in replicas:
            assert await answers(client) == 200  # each now holds the settings
        await configure("wrong")
        try:
            for client in replicas:

                async def refused(client: httpx.AsyncClient = client) -> bool:
                    return await answers(client) == 401

                await eventually(refused, timeout=15)
        finally:
            await configure("secret")
        for client in replicas:

            async def accepted(client: httpx.AsyncClient = client) -> bool:
                return await answers(client) == 200

            await eventually(accepted, timeout=15)


# -- a misbehaving cell ---------------------------------------------------------------------------

misbehaving = Cell("misbehaving")


@misbehaving.action("Domain", "fetch")
async def wrong_result(payload: dict[str, Any], settings: dict[str, Any]) -> Any:
    if payload["domain"].startswith("slow"):
        await asyncio.sleep(2.5)  # longer than the gateway's 1.5 s timeout
    if payload["domain"].startswith("bad"):
        return {"domain": "BAD DOMAIN", "status": "weird"}
    return {"domain": payload["domain"], "status": "active"}


async def test_a_result_outside_the_schema_is_a_502_naming_the_violation(env: Env) -> None:
    await env.run_cell(RC, misbehaving)
    try:
        response = await env.call("fetch", {"domain": "bad-answer.com"})
    finally:
        await env.run_cell(RC, _example())
    assert response.status_code == 502
    problem = response.json()
    assert problem["type"].endswith("/invalid-cell-result")
    assert {error["pointer"] for error in problem["errors"]} == {"/result/domain", "/result/status"}
    assert "weird" in problem["detail"]


async def test_a_timeout_is_a_504_and_the_late_reply_reaches_nobody(env: Env) -> None:
    await env.run_cell(RC, misbehaving)
    try:
        late_before = env.gateway.dispatcher.late_replies
        slow = await env.call("fetch", {"domain": "slow-answer.com"})
        assert slow.status_code == 504
        assert slow.json()["type"].endswith("/cell-timeout")
        # The next caller gets its own answer, not the late one arriving meanwhile.
        answers = await asyncio.gather(
            *(env.call("fetch", {"domain": f"next-{n}.com"}) for n in range(5))
        )
        for n, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            assert answer.json()["result"]["domain"] == f"next-{n}.com"

        async def discarded() -> bool:
            return env.gateway.dispatcher.late_replies > late_before

        await eventually(discarded, timeout=5)
    finally:
        await env.run_cell(RC, _example())


def _example() -> Cell:
    from examples.resellerclub_cell.cell import cell

    return cell


async def test_the_request_log_shows_latency_and_outcome(env: Env) -> None:
    await env.call("checkAvailability", {"domain": "logged.com"}, headers=env.operator)
    await env.call("create", {"domain": "BAD", "years": 1})
    ok = await env.client.get(
        "/v1/requests", params={"cell": RC, "status": "success"}, headers=env.operator
    )
    assert ok.status_code == 200
    items = ok.json()["items"]
    assert items
    assert all(item["outcome"] == "success" for item in items)
    assert items[0]["latency_ms"] > 0
    assert items[0]["cell"] == RC
    failed = await env.client.get(
        "/v1/requests", params={"cell": RC, "status": "invalid-payload"}, headers=env.operator
    )
    assert failed.json()["items"][0]["status_code"] == 422
    errors = await env.client.get("/v1/requests", params={"status": "error"}, headers=env.operator)
    assert all(item["outcome"] != "success" for item in errors.json()["items"])
    users = await env.client.get("/v1/requests", headers=env.token())
    assert users.status_code == 403


async def test_the_action_route_validates_path_and_body_like_the_documented_operation(
    env: Env,
) -> None:
    # Served by ActionCallLane, not FastAPI: the answers must be the ones /docs promises.
    path = f"/v1/cells/{'x' * 256}/plugins/NewResellerClub/actions/fetch"
    bad = await env.client.post(path, json={"payload": {}, "extra": 1}, headers=env.token())
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert {error["pointer"] for error in bad.json()["errors"]} == {
        "/path/installation",
        "/body/extra",
    }
    not_json = await env.client.post(
        f"/v1/cells/{RC}/plugins/NewResellerClub/actions/fetch",
        content=b"{not json",
        headers={**env.token(), "content-type": "application/json"},
    )
    assert not_json.status_code == 422
    assert "not valid JSON" in not_json.json()["errors"][0]["detail"]
    wrong_scheme = await env.client.post(path, json={}, headers={"Authorization": "Basic abc"})
    assert wrong_scheme.status_code == 401  # authentication comes before validation
    assert wrong_scheme.json()["status"] == 401


async def test_the_action_route_is_measured_under_its_template(env: Env) -> None:
    created = await env.call("create", {"domain": "measured.com", "years": 1})
    assert created.status_code == 200, created.text
    metrics = (await env.client.get("/metrics")).text
    template = "/v1/cells/{installation}/plugins/{plugin}/actions/{action}"
    assert f'route="{template}"' in metrics
    # Other methods on the path still reach FastAPI's router: a 405 problem, not the lane.
    other = await env.client.get(
        f"/v1/cells/{RC}/plugins/NewResellerClub/actions/fetch", headers=env.operator
    )
    assert other.status_code == 405
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_an_idempotency_key_makes_a_retried_call_run_once_per_caller(env: Env) -> None:
    path = f"/v1/cells/{RC}/plugins/NewResellerClub/actions/create"
    call = {"payload": {"domain": "retried.com", "years": 1}}
    keyed = {**env.token(), "Idempotency-Key": "order-1"}
    first = await env.client.post(path, json=call, headers=keyed)
    assert first.status_code == 200, first.text
    retried = await env.client.post(path, json=call, headers=keyed)
    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()
    # The same key from another caller is another request: the domain is taken by now.
    other = {**env.token(subject="another-billing"), "Idempotency-Key": "order-1"}
    refused = await env.client.post(path, json=call, headers=other)
    assert refused.status_code == 409, refused.text
    too_long = await env.client.post(
        path, json=call, headers={**keyed, "Idempotency-Key": "k" * 256}
    )
    assert too_long.status_code == 422
    assert [error["pointer"] for error in too_long.json()["errors"]] == ["/header/idempotency-key"]


async def test_a_lost_requests_connection_is_a_503_until_it_is_restored(env: Env) -> None:
    # The requests to cells have a broker connection of their own (modyard.cell.wire).
    connection = env.gateway.dispatcher.connection
    assert connection is not None
    connection.abort()

    refused = await env.call("create", {"domain": "lost-link.com", "years": 1})
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"].endswith("/cell-unavailable")
    assert refused.headers["retry-after"] == "2"
    ready = await env.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"] == "down"

    async def restored() -> bool:
        return (await env.client.get("/readyz")).status_code == 200

    await eventually(restored, timeout=10)
    assert env.gateway.dispatcher.connection not in (None, connection)
    answered = await env.call("create", {"domain": "lost-link.com", "years": 1})
    assert answered.status_code == 200, answered.text
    assert answered.json()["result"]["domain"] == "lost-link.com"


async def test_every_step_is_logged_with_the_correlation_id(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="modyard.appcell_gateway.pipeline"):
        response = await env.call(
            "create",
            {"domain": "logged-steps.com", "years": 1},
            headers={**env.token(), "X-Correlation-ID": "steps-of-one-call"},
        )
    assert response.status_code == 200, response.text
    events = [
        record.msg
        for record in caplog.records
        if record.name == "modyard.appcell_gateway.pipeline"
        and isinstance(record.msg, dict)
        and record.msg.get("correlation_id") == "steps-of-one-call"
    ]
    assert [event["event"] for event in events] == [
        "action_found",
        "security_passed",
        "payload_valid",
        "settings_read",
        "cell_answered",
        "result_valid",
        "cell_request",
    ]
    assert events[-1]["outcome"] == "success"
    assert events[-1]["latency_ms"] > 0
