"""Cells in the shapes real AppCell cells have, published, installed and served live: the bundled
look-alike of seed 003 (`require.ui`), payload templates with the resources' schemas, and a cell
process written for AppCell itself (not with modyard's SDK) answering in AppCell's reply shape."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import aio_pika
import httpx
import pytest
from gateway_env import WS, Env

from modyard.modules.examples import example_files
from modyard.sdk.cell import Cell

pytestmark = pytest.mark.infra


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(files.items()):
            archive.writestr(path, data)
    return buffer.getvalue()


async def test_the_seeds_cell_with_require_ui_installs_and_gets_ready(env: Env) -> None:
    # appcell-newresellerclub is seed 003's AppCell.json: "require": {"appcell": ">=1",
    # "ui": "^1.0", "etcd": ">=3.0"}. ui is the platform's UI, not a module named 'ui': the
    # installer once answered 409 unresolvable-dependency "The registry has no module named 'ui'".
    await env.publish(_zip(dict(example_files("appcell-newresellerclub"))))
    response = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{WS}/installations",
        json={
            "module": "newresellerclubcell",
            "version": "2.3.0",
            "slug": "seed",
            "config": {"userid": "reseller", "password": "secret"},
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["version"] == "2.3.0"
    await env.wait_status(f"{WS}:seed", "ready")
    described = (await env.client.get(f"/v1/cells/{WS}:seed", headers=env.operator)).json()
    assert "NewResellerClub" in described["plugins"]


# -- payload templates (A1) -----------------------------------------------------------------------

TPL = f"{WS}:tpl"
PLUGIN = "TemplatedRegistrar"
received: list[dict[str, Any]] = []
templated = Cell("templatedRegistrarCell")


@templated.action("Domain", "create")
async def _create(payload: Any, settings: Any) -> Any:
    received.append(payload)
    return {"domain": payload["domain"], "status": "active"}


@templated.action("Domain", "fetch")
async def _fetch(payload: Any, settings: Any) -> Any:
    received.append(payload)
    return {"domain": payload["domain"], "status": "active"}


@templated.action("Domain", "getEppCode")
async def _epp(payload: Any, settings: Any) -> Any:
    received.append(payload)
    return {"eppcode": f"epp-{payload['domain']}"}


@templated.action("Contact", "fetchAll")
async def _contacts(payload: Any, settings: Any) -> Any:
    received.append(payload)
    # contacts.result.schema.json (the resource's $result) requires registrant.email.
    return {"registrant": {"firstname": "Ada"}}


async def _templated_cell(env: Env) -> None:
    if TPL in env.workers:
        return
    archive = _zip(dict(example_files("appcell-templated-registrar")))
    published = await env.external(
        "POST",
        f"{env.registry}/v1/modules",
        params={"version": "1.0.0"},
        content=archive,
        headers={"content-type": "application/zip"},
    )
    assert published.status_code in (200, 201), published.text
    installed = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{WS}/installations",
        json={
            "module": "templatedregistrarcell",
            "version": "1.0.0",
            "slug": "tpl",
            "config": {"username": "u", "password": "p"},
        },
    )
    assert installed.status_code == 201, installed.text
    await env.wait_status(TPL, "ready")
    await env.run_cell(TPL, templated)


async def _call(env: Env, action: str, body: dict[str, Any]) -> httpx.Response:
    return await env.client.post(
        f"/v1/cells/{TPL}/plugins/{PLUGIN}/actions/{action}", json=body, headers=env.token()
    )


BILLIA_DATA = {
    "product": {"option": {"domain": "example.com"}},
    "order": {"quantity": 2},
    "customer": {"email": "ada@example.com"},
}


async def test_the_payload_is_compiled_from_the_template_and_the_data(env: Env) -> None:
    await _templated_cell(env)
    received.clear()
    answer = await _call(env, "create", {"data": BILLIA_DATA})
    assert answer.status_code == 200, answer.text
    # Twig renders text: order.quantity 2 → "2"; record_type missing → default('A').
    assert received == [
        {"domain": "example.com", "type": "A", "numyears": "2", "email": "ada@example.com"}
    ]
    # A field the caller sends in payload is taken instead of its placeholder.
    received.clear()
    answer = await _call(
        env, "create", {"data": BILLIA_DATA, "payload": {"numyears": "5", "type": "CNAME"}}
    )
    assert answer.status_code == 200, answer.text
    assert received[0]["numyears"] == "5"
    assert received[0]["type"] == "CNAME"


async def test_the_compiled_payload_is_validated_against_the_resources_schema(env: Env) -> None:
    await _templated_cell(env)
    received.clear()
    # Before, the template was the execution's "schema" ({} passed it) and the resource's
    # register.schema.json never applied: create {} and create {"anything": 1} reached the cell.
    bad = await _call(
        env,
        "create",
        {"data": {**BILLIA_DATA, "product": {"option": {"domain": "no domain"}}}},
    )
    assert bad.status_code == 422, bad.text
    assert [e["pointer"] for e in bad.json()["errors"]] == ["/body/payload/domain"]
    wrong_type = await _call(env, "create", {"data": BILLIA_DATA, "payload": {"type": "MX"}})
    assert wrong_type.status_code == 422, wrong_type.text
    assert [e["pointer"] for e in wrong_type.json()["errors"]] == ["/body/payload/type"]
    missing = await _call(env, "create", {"data": {"product": {"option": {"domain": "a.com"}}}})
    assert missing.status_code == 422, missing.text
    assert [e["pointer"] for e in missing.json()["errors"]] == ["/body/data/customer/email"]
    assert "send it in data" in missing.json()["errors"][0]["detail"]
    assert received == []


async def test_fields_are_validated_one_by_one_so_a_fetch_sends_only_its_own(env: Env) -> None:
    await _templated_cell(env)
    received.clear()
    # Domain's schema (register.schema.json) requires numyears and email; fetch's template names
    # only domain, and the seed validates the plugin's payload "field by field".
    answer = await _call(env, "fetch", {"data": BILLIA_DATA})
    assert answer.status_code == 200, answer.text
    assert received == [{"domain": "example.com"}]
    # The caller may send the compiled payload itself.
    answer = await _call(env, "fetch", {"payload": {"domain": "other.org"}})
    assert answer.status_code == 200, answer.text
    assert received[-1] == {"domain": "other.org"}


async def test_rpc_actions_and_results_use_the_resources_schemas(env: Env) -> None:
    await _templated_cell(env)
    epp = await _call(env, "getEppCode", {"data": BILLIA_DATA})
    assert epp.status_code == 200, epp.text
    assert epp.json()["postpayload"] == {
        "type": "overwrite",
        "data": {"auth_info": "epp-example.com"},
    }
    described = (await env.client.get(f"/v1/cells/{TPL}", headers=env.operator)).json()
    (create,) = described["plugin_actions"][PLUGIN]["actions"]["create"]
    assert create["payload"]["path"] == "schema/domain/register.schema.json"
    assert create["payload_template"]["email"] == "{{customer.email}}"
    assert create["result_example"]["type"] == "A"
    # contacts.result.json is an example; the resource's contacts.result.schema.json applies.
    contacts = await _call(env, "fetchAll.Contact", {"data": BILLIA_DATA})
    assert contacts.status_code == 502, contacts.text
    assert contacts.json()["errors"][0]["pointer"] == "/result/registrant"


# -- a cell process written for AppCell (A3) --------------------------------------------------------


async def _appcell_style_cell(
    env: Env, answers: list[dict[str, Any]]
) -> aio_pika.abc.AbstractConnection:
    """A raw AMQP worker answering like MicroCell's ProcessCommand (status in the body), with
    only what docs/gateway.md asks of such a cell: consume the queue the credentials name, reply
    to the exchange of the ``reply-exchange`` header with ``reply_to`` as routing key, the
    request's correlation id and its broker user as ``user_id``."""
    await env.stop_cell(TPL)
    given = await env.credentials(TPL)
    connection = await aio_pika.connect(given["amqp_url"])
    channel = await connection.channel()
    queue = await channel.get_queue(given["queue"], ensure=False)
    replies = await channel.get_exchange(given["reply_exchange"], ensure=False)

    async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            request = json.loads(message.body)
            assert {"action", "resource", "payload", "settings"} <= request.keys()
            exchange = (message.headers or {}).get("reply-exchange")
            assert exchange == given["reply_exchange"]
            await replies.publish(
                aio_pika.Message(
                    json.dumps(answers.pop(0)).encode(),
                    correlation_id=message.correlation_id,
                    user_id=given["username"],
                    content_type="application/json",
                ),
                routing_key=str(message.reply_to),
            )

    await queue.consume(on_request)
    return connection


async def test_a_cell_answering_in_appcells_shape_is_understood(env: Env) -> None:
    await _templated_cell(env)
    answers = [
        # MicroCell's Create.php: status in the body, and what Billia updates on the product.
        {
            "status": 200,
            "result": {"domain": "example.com", "status": "active"},
            "for-update": {"option": {"auth_info": "TRANSFER CODE"}},
        },
        # ProcessCommand's error shape.
        {"status": 422, "detail": "Action: x do not exists", "title": "Unexpected Error"},
        # A status that says the call failed, even with a result beside it.
        {"status": 404, "result": {"domain": "example.com", "status": "gone"}},
        {"status": 500, "title": "Unexpected Error"},
        {"status": "fine", "result": {}},
    ]
    connection = await _appcell_style_cell(env, answers)
    try:
        created = await _call(env, "create", {"data": BILLIA_DATA})
        assert created.status_code == 200, created.text
        assert created.json()["result"] == {"domain": "example.com", "status": "active"}
        assert created.json()["for-update"] == {"option": {"auth_info": "TRANSFER CODE"}}
        failed = await _call(env, "fetch", {"data": BILLIA_DATA})
        assert failed.status_code == 422, failed.text
        assert failed.json()["type"].endswith("/cell-error")
        assert "Action: x do not exists" in failed.json()["detail"]
        gone = await _call(env, "fetch", {"data": BILLIA_DATA})
        assert gone.status_code == 404, gone.text
        broken = await _call(env, "fetch", {"data": BILLIA_DATA})
        assert broken.status_code == 502, broken.text
        assert "Unexpected Error" in broken.json()["detail"]
        unreadable = await _call(env, "fetch", {"data": BILLIA_DATA})
        assert unreadable.status_code == 502, unreadable.text
        assert unreadable.json()["type"].endswith("/invalid-cell-result")
    finally:
        await connection.close()
        await env.run_cell(TPL, templated)
