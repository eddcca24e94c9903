"""OAuth 2 accounts against a real provider (authlib's authorization server on loopback): the
authorization code flow with PKCE and a signed state bound to the user, tokens refreshed when
expired (100 concurrent readers, one refresh) and after a 401, and a revoked refresh token that
turns the account invalid and records the event the runtime's ``account.invalid`` webhook
comes from."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from modyard.jsrunner.context import SLOT as RUNNER_SLOT

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts_env import Stack, accounts_stack, connector_zip, unique
from oauth_provider import USER, Provider, oauth_provider

from modyard.common.auth import Role
from modyard.jsrunner.accounts.credentials import AccountsClient
from modyard.runtime.app import create_app as create_runtime
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.runtime_webhooks import WebhookReceiver
from modyard.testing.services import in_process

pytestmark = pytest.mark.infra

CALLBACK = "http://127.0.0.1:9/oauth/callback"  # the backoffice's page; the test is the browser


def oauth_auth_js(provider: str) -> str:
    return f"""'use strict';
module.exports = {{
    type: 'oauth2',
    definition: {{
        scope: ['profile'],
        authUrl: '{provider}/authorize',
        requestAccessToken: '{provider}/token',
        requestProfileInfo: '{provider}/userinfo',
        accountNameFromProfileInfo: 'email',
    }},
}};
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oauth_provider() as found:
        yield found


@pytest.fixture(scope="module")
async def stack(infra: IsolatedInfra) -> AsyncIterator[Stack]:
    async with accounts_stack(infra, "oauth", oauth_callback_url=CALLBACK) as found:
        yield found


async def _outbox(stack: Stack, kind: str) -> list[dict[str, Any]]:
    async with stack.app.state.database.transaction() as session:
        rows = await session.execute(
            text("SELECT envelope FROM outbox WHERE envelope->>'type' = :t ORDER BY seq"),
            {"t": kind},
        )
        return [row[0]["data"] for row in rows]


async def _expire(stack: Stack, account: str) -> None:
    async with stack.app.state.database.transaction() as session:
        await session.execute(
            text("UPDATE accounts SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": account},
        )


async def _refreshes(stack: Stack, account: str) -> int:
    async with stack.app.state.database.transaction() as session:
        found = await session.execute(
            text("SELECT refreshes FROM accounts WHERE id = :id"), {"id": account}
        )
        return int(found.scalar_one())


async def test_connect_refresh_and_invalidation(stack: Stack, provider: Provider) -> None:
    ws = unique("w")
    name = f"{unique('prov')}.hub"
    service = name.replace(".", ":")
    await stack.publish(connector_zip(name, oauth_auth_js(provider.url)))
    await stack.workspace(ws, ["ann@acme.test", "bob@acme.test"])
    await stack.install(ws, name)
    ann, bob = stack.headers("ann@acme.test", ws), stack.headers("bob@acme.test", ws)
    services = stack.headers("runtime", role=Role.service)
    client = stack.client

    # No OAuth client yet: the user is told an operator must set one.
    early = await client.post(
        f"/v1/workspaces/{ws}/accounts/connect", json={"service": service}, headers=ann
    )
    assert early.status_code == 409, early.text
    assert early.json()["type"].endswith("/auth-service-not-configured")
    registered = provider.register(CALLBACK)
    body = {"client_id": registered.client_id, "client_secret": registered.client_secret}
    assert (
        await client.put(f"/v1/auth-services/{service}", json=body, headers=ann)
    ).status_code == 403
    stored = await client.put(f"/v1/auth-services/{service}", json=body, headers=stack.operator)
    assert stored.status_code == 200, stored.text
    assert stored.json()["has_secret"] is True
    assert registered.client_secret not in stored.text
    assert (
        registered.client_secret
        not in (await client.get("/v1/auth-services", headers=stack.operator)).text
    )

    # A password-style create is refused for an OAuth service.
    refused = await client.post(
        f"/v1/workspaces/{ws}/accounts", json={"service": service}, headers=ann
    )
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/connect-required")

    started = await client.post(
        f"/v1/workspaces/{ws}/accounts/connect",
        json={"service": service, "return_to": "/accounts"},
        headers=ann,
    )
    assert started.status_code == 200, started.text
    authorize = httpx.URL(started.json()["authorize_url"])
    assert authorize.params["code_challenge_method"] == "S256"
    assert authorize.params["scope"] == "profile"
    assert "code_verifier" not in str(authorize)
    async with httpx.AsyncClient() as browser:
        redirected = await browser.get(str(authorize))
    assert redirected.status_code == 302, redirected.text
    back = httpx.URL(redirected.headers["location"])
    assert str(back.copy_with(query=None)) == CALLBACK
    callback = {"code": back.params["code"], "state": back.params["state"]}

    # The state is bound to the user who started: another member cannot finish it.
    stolen = await client.post(f"/v1/workspaces/{ws}/accounts/callback", json=callback, headers=bob)
    assert stolen.status_code == 403, stolen.text
    forged = await client.post(
        f"/v1/workspaces/{ws}/accounts/callback",
        json={**callback, "state": callback["state"][:-4] + "AAAA"},
        headers=ann,
    )
    assert forged.status_code == 422
    connected = await client.post(
        f"/v1/workspaces/{ws}/accounts/callback", json=callback, headers=ann
    )
    assert connected.status_code == 201, connected.text
    account = connected.json()
    assert (account["name"], account["type"], account["return_to"]) == (
        "ann@provider.test",
        "oauth2",
        "/accounts",
    )
    replayed = await client.post(
        f"/v1/workspaces/{ws}/accounts/callback", json=callback, headers=ann
    )
    assert replayed.status_code == 422  # a state is used once

    path = f"/v1/workspaces/{ws}/accounts/{account['id']}"
    first = (await client.get(f"{path}/credentials", headers=services)).json()["auth"]
    assert set(first) >= {"accessToken", "refreshToken", "tokenType"}
    # The profile from sign-in, for components' context.auth.profileInfo (Appmixer's).
    assert first["profileInfo"] == USER
    assert first["accessToken"] not in connected.text
    assert (await client.post(f"{path}/test", headers=ann)).json()["valid"] is True
    assert provider.refreshes == 0

    # Expired: 100 concurrent readers cause exactly one refresh, and all get its token.
    await _expire(stack, account["id"])
    answers = await asyncio.gather(
        *(client.get(f"{path}/credentials", headers=services) for _ in range(100))
    )
    assert {answer.status_code for answer in answers} == {200}
    tokens = {answer.json()["auth"]["accessToken"] for answer in answers}
    assert len(tokens) == 1
    assert tokens != {first["accessToken"]}
    assert provider.refreshes == 1
    assert await _refreshes(stack, account["id"]) == 1

    # A component got a 401 with the current token: one refresh; a late caller with the same
    # refused token gets the new one without another refresh.
    current = tokens.pop()
    after_401 = await client.post(
        f"{path}/refresh", json={"failed_token": current}, headers=services
    )
    assert after_401.status_code == 200, after_401.text
    renewed = after_401.json()["auth"]["accessToken"]
    assert after_401.json()["auth"]["profileInfo"] == USER  # a refresh keeps the profile
    assert renewed != current
    late = await client.post(f"{path}/refresh", json={"failed_token": current}, headers=services)
    assert late.json()["auth"]["accessToken"] == renewed
    assert provider.refreshes == 2

    # The provider revokes the grant: the next refresh is refused, the account turns invalid,
    # the invalidation is recorded once (never with a token in it) and the runtime sends the
    # account.invalid system webhook.
    runtime_app = create_runtime(
        RuntimeSettings(
            database_url=stack.settings.database_url,
            amqp_url=stack.settings.amqp_url,
            db_schema="runtime_oauth",
            webhook_poll_interval_seconds=0.2,
        )
    )
    async with in_process(runtime_app) as runtime, WebhookReceiver() as receiver:
        hook = await runtime.post(
            "/v1/system-webhooks",
            json={
                "url": receiver.url,
                "events": ["account.invalid"],
                "secret": "a-webhook-secret-of-some-length",
            },
            headers=stack.operator,
        )
        assert hook.status_code == 201, hook.text
        await _invalidated(stack, provider, account["id"], path, renewed, ann, services)
        [delivery] = await receiver.wait_for(1, timeout=60)
    sent = delivery.json()
    assert sent["event"] == "account.invalid"
    assert sent["data"]["account"] == {
        "id": account["id"],
        "name": "ann@provider.test",
        "service": service,
    }
    assert (sent["data"]["workspace"], sent["data"]["owner"]) == (ws, "ann@acme.test")
    assert renewed not in delivery.body.decode()


async def _invalidated(
    stack: Stack,
    provider: Provider,
    account: str,
    path: str,
    renewed: str,
    ann: dict[str, str],
    services: dict[str, str],
) -> None:
    client = stack.client
    provider.revoke_all()
    await _expire(stack, account)
    refused_refresh = await client.get(f"{path}/credentials", headers=services)
    assert refused_refresh.status_code == 409, refused_refresh.text
    assert refused_refresh.json()["type"].endswith("/account-invalid")
    again = await client.get(f"{path}/credentials", headers=services)
    assert again.status_code == 409
    seen = (await client.get(path, headers=ann)).json()
    assert seen["status"] == "invalid"
    assert "refused to refresh" in seen["invalid_reason"]
    events = [
        e
        for e in await _outbox(stack, "modyard.installer.account.invalidated")
        if e["account_id"] == account
    ]
    assert len(events) == 1
    assert events[0]["owner"] == "ann@acme.test"
    assert renewed not in str(events[0])


USERINFO_JS = """module.exports = {
    async receive(context) {
        const response = await context.httpRequest({
            url: context.properties.url + '/userinfo',
            headers: { Authorization: 'Bearer ' + context.auth.accessToken },
        });
        await context.sendJson({ email: response.data.email }, 'out');
    }
};
"""


async def _connect(
    stack: Stack, provider: Provider, ws: str, service: str, user: dict[str, str]
) -> str:
    """An OAuth account of ``service`` for ``user``, through the whole code flow."""
    registered = provider.register(CALLBACK)
    body = {"client_id": registered.client_id, "client_secret": registered.client_secret}
    stored = await stack.client.put(
        f"/v1/auth-services/{service}", json=body, headers=stack.operator
    )
    assert stored.status_code == 200, stored.text
    started = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/connect", json={"service": service}, headers=user
    )
    async with httpx.AsyncClient() as browser:
        redirected = await browser.get(started.json()["authorize_url"])
    back = httpx.URL(redirected.headers["location"])
    connected = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/callback",
        json={"code": back.params["code"], "state": back.params["state"]},
        headers=user,
    )
    assert connected.status_code == 201, connected.text
    return str(connected.json()["id"])


async def test_a_component_refused_with_401_runs_again_after_one_refresh(
    stack: Stack, provider: Provider
) -> None:
    """The runner reads the account from the installer; the provider stops taking the access
    token: 20 concurrent calls get 401, the runner asks for a refresh naming the refused token,
    the installer refreshes once, and every call runs again and succeeds."""
    ws = unique("w")
    name = f"{unique('prov')}.hub"
    service = name.replace(".", ":")
    await stack.publish(connector_zip(name, oauth_auth_js(provider.url), USERINFO_JS))
    await stack.workspace(ws, ["ann@acme.test"])
    await stack.install(ws, name)
    account = await _connect(stack, provider, ws, service, stack.headers("ann@acme.test", ws))
    runner = RUNNER_SLOT.of(stack.runner_app).runner
    runner.accounts = AccountsClient(stack.settings, transport=httpx.ASGITransport(app=stack.app))

    def request(index: int) -> dict[str, Any]:
        return {
            "module": name,
            "version": "1.0.0",
            "component": f"{name}.core.Whoami",
            "port": "in",
            "payload": {},
            "properties": {"url": provider.url},
            "workspace": ws,
            "flow_id": "f-1",
            "node_id": "who",
            "message_id": f"m-{index}",
            "account": account,
        }

    first = await runner.handle(request(0))
    assert first == {"outputs": {"out": [{"email": "ann@provider.test"}]}}
    before = provider.refreshes
    provider.revoke_access()
    answers = await asyncio.gather(*(runner.handle(request(i)) for i in range(1, 21)))
    assert answers == [{"outputs": {"out": [{"email": "ann@provider.test"}]}}] * 20
    assert provider.refreshes == before + 1
    assert await _refreshes(stack, account) == 1
