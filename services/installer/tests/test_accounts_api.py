"""Accounts (API key): the form from auth.js, ``validate`` asking a loopback vendor through the
real JavaScript runner, credentials encrypted at rest and never shown, and two workspaces (and
two users of one workspace) that never reach each other's accounts."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from modyard.installer.context import SLOT

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts_env import Stack, Vendor, accounts_stack, connector_zip, loopback, unique

from modyard.common.auth import Role
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra

ANN_KEY, BOB_KEY = "key-ann-0001-secret", "key-bob-0002-secret"


@pytest.fixture(scope="module")
async def vendor() -> AsyncIterator[Vendor]:
    found = Vendor(keys={ANN_KEY: "ann@vendor.test", BOB_KEY: "bob@vendor.test"})
    async with loopback(found.app()) as url:
        found.url = url
        yield found


@pytest.fixture(scope="module")
async def stack(infra: IsolatedInfra) -> AsyncIterator[Stack]:
    async with accounts_stack(infra, "acct") as found:
        yield found


async def _connector(stack: Stack, *workspaces: tuple[str, list[str]]) -> str:
    name = f"{unique('acme')}.crm"
    await stack.publish(connector_zip(name))
    for slug, members in workspaces:
        await stack.workspace(slug, members)
        await stack.install(slug, name)
    return name.replace(".", ":")


async def test_an_api_key_account_is_validated_by_the_vendor_and_kept_encrypted(
    stack: Stack, vendor: Vendor
) -> None:
    ws = unique("w")
    service = await _connector(stack, (ws, ["ann@acme.test"]))
    ann = stack.headers("ann@acme.test", ws)

    services = (await stack.client.get(f"/v1/workspaces/{ws}/auth-services", headers=ann)).json()
    assert [(s["service"], s["type"]) for s in services] == [(service, "apiKey")]
    assert services[0]["fields"]["apiKey"] == {
        "type": "text",
        "name": "API Key",
        "tooltip": "Settings > API",
    }

    refused = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts",
        json={"service": service, "credentials": {"apiKey": "key-wrong", "baseUrl": vendor.url}},
        headers=ann,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/account-validation-failed")
    assert "Invalid API key: check Settings > API" in refused.json()["detail"]
    assert refused.json()["vendor_status"] == 401

    missing = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts",
        json={"service": service, "credentials": {"apiKey": ANN_KEY, "region": "eu"}},
        headers=ann,
    )
    assert missing.status_code == 422, missing.text
    assert {e["pointer"] for e in missing.json()["errors"]} == {
        "/body/credentials/baseUrl",
        "/body/credentials/region",
    }
    listed = await stack.client.get(f"/v1/workspaces/{ws}/accounts", headers=ann)
    assert listed.json()["items"] == []  # refusals stored nothing

    created = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts",
        json={"service": service, "credentials": {"apiKey": ANN_KEY, "baseUrl": vendor.url}},
        headers=ann,
    )
    assert created.status_code == 201, created.text
    account = created.json()
    assert (account["name"], account["owner"], account["status"]) == (
        "ann@vendor.test",
        "ann@acme.test",
        "valid",
    )
    assert ANN_KEY not in created.text
    assert created.headers["Location"] == f"/v1/workspaces/{ws}/accounts/{account['id']}"

    async with stack.app.state.database.transaction() as session:
        stored = (
            await session.execute(text("SELECT secrets FROM accounts WHERE id = :id"), account)
        ).scalar_one()
    assert ANN_KEY not in stored
    assert SLOT.of(stack.app).secrets.decrypt_json(stored)["apiKey"] == ANN_KEY

    tested = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/{account['id']}/test", headers=ann
    )
    assert tested.json()["valid"] is True
    # The vendor revokes the key: the test says so and the account turns invalid.
    vendor.keys.pop(ANN_KEY)
    try:
        tested = await stack.client.post(
            f"/v1/workspaces/{ws}/accounts/{account['id']}/test", headers=ann
        )
    finally:
        vendor.keys[ANN_KEY] = "ann@vendor.test"
    assert tested.status_code == 200, tested.text
    assert tested.json()["valid"] is False
    assert tested.json()["message"] == "Invalid API key: check Settings > API"
    assert tested.json()["account"]["status"] == "invalid"


async def test_two_workspaces_and_two_users_never_reach_each_others_accounts(
    stack: Stack, vendor: Vendor
) -> None:
    one, two = unique("w"), unique("w")
    service = await _connector(
        stack, (one, ["ann@acme.test", "carl@acme.test"]), (two, ["bob@beta.test"])
    )
    ann, carl = stack.headers("ann@acme.test", one), stack.headers("carl@acme.test", one)
    bob = stack.headers("bob@beta.test", two)
    body = {"service": service, "credentials": {"apiKey": ANN_KEY, "baseUrl": vendor.url}}
    account = (
        await stack.client.post(f"/v1/workspaces/{one}/accounts", json=body, headers=ann)
    ).json()
    bobs = await stack.client.post(
        f"/v1/workspaces/{two}/accounts",
        json={**body, "credentials": {"apiKey": BOB_KEY, "baseUrl": vendor.url}},
        headers=bob,
    )
    assert bobs.status_code == 201, bobs.text
    path = f"/v1/workspaces/{one}/accounts/{account['id']}"

    # Another workspace's user: not a member of the first, and the id means nothing in theirs.
    assert (await stack.client.get(path, headers=bob)).status_code == 403
    assert (
        await stack.client.get(f"/v1/workspaces/{one}/accounts", headers=bob)
    ).status_code == 403
    crossed = f"/v1/workspaces/{two}/accounts/{account['id']}"
    assert (await stack.client.get(crossed, headers=bob)).status_code == 404
    assert (await stack.client.delete(crossed, headers=bob)).status_code == 404
    assert (await stack.client.post(f"{crossed}/test", headers=bob)).status_code == 404
    # Another user of the same workspace neither sees nor deletes nor tests it.
    assert (await stack.client.get(f"/v1/workspaces/{one}/accounts", headers=carl)).json()[
        "items"
    ] == []
    assert (await stack.client.get(path, headers=carl)).status_code == 404
    assert (await stack.client.delete(path, headers=carl)).status_code == 404
    assert (await stack.client.post(f"{path}/test", headers=carl)).status_code == 404
    # Users and operators never read credentials; a service does.
    for headers in (ann, stack.operator):
        denied = await stack.client.get(f"{path}/credentials", headers=headers)
        assert denied.status_code == 403, denied.text
    service_headers = stack.headers("runtime", role=Role.service)
    read = await stack.client.get(f"{path}/credentials", headers=service_headers)
    assert read.json()["auth"] == {"apiKey": ANN_KEY, "baseUrl": vendor.url}
    crossed_read = await stack.client.get(f"{crossed}/credentials", headers=service_headers)
    assert crossed_read.status_code == 404
    # Operators see that it exists, never its credentials.
    seen = await stack.client.get(f"/v1/workspaces/{one}/accounts", headers=stack.operator)
    assert [item["id"] for item in seen.json()["items"]] == [account["id"]]
    assert ANN_KEY not in seen.text
    assert BOB_KEY not in seen.text

    assert (await stack.client.delete(path, headers=ann)).status_code == 204
    assert (await stack.client.get(path, headers=ann)).status_code == 404


async def test_accounts_are_listed_newest_first_by_pages_and_filtered_by_service(
    stack: Stack, vendor: Vendor
) -> None:
    ws = unique("w")
    service = await _connector(stack, (ws, ["ann@acme.test"]))
    ann = stack.headers("ann@acme.test", ws)
    ids = []
    for index in range(3):
        response = await stack.client.post(
            f"/v1/workspaces/{ws}/accounts",
            json={
                "service": service,
                "name": f"key {index}",
                "credentials": {"apiKey": ANN_KEY, "baseUrl": vendor.url},
            },
            headers=ann,
        )
        ids.append(response.json()["id"])
    first = (await stack.client.get(f"/v1/workspaces/{ws}/accounts?limit=2", headers=ann)).json()
    assert [item["name"] for item in first["items"]] == ["key 2", "key 1"]
    rest = (
        await stack.client.get(
            f"/v1/workspaces/{ws}/accounts?limit=2&cursor={first['next_cursor']}", headers=ann
        )
    ).json()
    assert [item["name"] for item in rest["items"]] == ["key 0"]
    assert rest["next_cursor"] is None
    other = await stack.client.get(f"/v1/workspaces/{ws}/accounts?service=x:y", headers=ann)
    assert other.json()["items"] == []
    bad = await stack.client.get(f"/v1/workspaces/{ws}/accounts?cursor=zz", headers=ann)
    assert bad.status_code == 422
    unknown = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts", json={"service": "x:y", "credentials": {}}, headers=ann
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-auth-service")


async def test_an_oauth_1_service_is_connected_not_typed_in(stack: Stack, vendor: Vendor) -> None:
    ws = unique("w")
    name = f"{unique('acme')}.legacy"
    oauth1 = "module.exports = { type: 'oauth', definition: { requestRequestToken: 'x' } };"
    await stack.publish(connector_zip(name, oauth1))
    await stack.workspace(ws, ["ann@acme.test"])
    await stack.install(ws, name)
    ann = stack.headers("ann@acme.test", ws)
    service = name.replace(".", ":")
    typed = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts",
        json={"service": service, "credentials": {"token": "x"}},
        headers=ann,
    )
    assert typed.status_code == 422, typed.text
    assert typed.json()["type"].endswith("/connect-required")
    # Connecting needs the operator's OAuth client (consumer key) first.
    early = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/connect", json={"service": service}, headers=ann
    )
    assert early.status_code == 409, early.text
    assert early.json()["type"].endswith("/auth-service-not-configured")


async def test_an_account_shared_with_a_member_lets_their_flows_use_it(
    stack: Stack, vendor: Vendor
) -> None:
    ws, other = unique("w"), unique("w")
    service = await _connector(
        stack, (ws, ["ann@acme.test", "carl@acme.test"]), (other, ["bob@beta.test"])
    )
    name = service.replace(":", ".")
    ann, carl = stack.headers("ann@acme.test", ws), stack.headers("carl@acme.test", ws)
    body = {"service": service, "credentials": {"apiKey": ANN_KEY, "baseUrl": vendor.url}}
    account = (
        await stack.client.post(f"/v1/workspaces/{ws}/accounts", json=body, headers=ann)
    ).json()["id"]
    runtime = stack.headers("runtime", role=Role.service)

    async def problems(owner: str) -> list[dict[str, str]]:
        checked = await stack.client.post(
            f"/v1/workspaces/{ws}/accounts/checks",
            json={
                "owner": owner,
                "nodes": [
                    {
                        "node": "who",
                        "installation": name,
                        "component": f"{name}.core.Whoami",
                        "account": account,
                    }
                ],
            },
            headers=runtime,
        )
        assert checked.status_code == 200, checked.text
        return list(checked.json()["problems"])

    assert await problems("ann@acme.test") == []
    [refused] = await problems("carl@acme.test")
    assert "not the flow owner's" in refused["detail"]

    path = f"/v1/workspaces/{ws}/accounts/{account}/shares"
    # Only the owner shares, and only with members of the workspace.
    assert (
        await stack.client.put(path, json={"subjects": ["carl@acme.test"]}, headers=carl)
    ).status_code == 404
    assert (
        await stack.client.put(path, json={"subjects": ["carl@acme.test"]}, headers=stack.operator)
    ).status_code == 403
    stranger = await stack.client.put(path, json={"subjects": ["bob@beta.test"]}, headers=ann)
    assert stranger.status_code == 422
    assert stranger.json()["errors"][0]["pointer"] == "/body/subjects/0"
    shared = await stack.client.put(path, json={"subjects": ["carl@acme.test"]}, headers=ann)
    assert shared.status_code == 200, shared.text
    assert shared.json()["shared_with"] == ["carl@acme.test"]
    assert await problems("carl@acme.test") == []
    # Carl's flows may use it; Carl still neither sees nor reads it.
    assert (
        await stack.client.get(f"/v1/workspaces/{ws}/accounts/{account}", headers=carl)
    ).status_code == 404
    assert ANN_KEY not in shared.text
    unshared = await stack.client.put(path, json={"subjects": []}, headers=ann)
    assert unshared.json()["shared_with"] == []
    assert len(await problems("carl@acme.test")) == 1
