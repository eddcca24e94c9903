"""OAuth 1.0a accounts (Appmixer's ``type: 'oauth'``) against a real provider (authlib's OAuth 1
authorization server, signatures and nonces checked): a look-alike auth.js that signs its own
calls (HMAC-SHA1, as a vendor SDK does) gets a request token, the user authorizes, the callback
(carrying our signed state) exchanges the verifier for token credentials, and a component's
``context.auth`` holds them with the consumer key it signs with."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accounts_env import Stack, accounts_stack, connector_zip, unique
from oauth1_provider import Provider1, oauth1_provider

from modyard.common.auth import Role
from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra

CALLBACK = "http://127.0.0.1:9/oauth/callback"

SIGNER = """
const crypto = require('crypto');
const enc = (s) => encodeURIComponent(String(s)).replace(/[!'()*]/g,
    (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
function header(method, url, consumerKey, consumerSecret, token, tokenSecret, extra) {
    const params = Object.assign({
        oauth_consumer_key: consumerKey,
        oauth_nonce: crypto.randomBytes(16).toString('hex'),
        oauth_signature_method: 'HMAC-SHA1',
        oauth_timestamp: String(Math.floor(Date.now() / 1000)),
        oauth_version: '1.0',
    }, token ? { oauth_token: token } : {}, extra || {});
    const u = new URL(url);
    const pairs = [...u.searchParams.entries(), ...Object.entries(params)]
        .map(([k, v]) => [enc(k), enc(v)])
        .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : (a[0] < b[0] ? -1 : 1)));
    const base = [method, enc(u.origin + u.pathname), enc(pairs.map(([k, v]) => k + '=' + v).join('&'))].join('&');
    params.oauth_signature = crypto.createHmac('sha1', enc(consumerSecret) + '&' + enc(tokenSecret || ''))
        .update(base).digest('base64');
    return 'OAuth ' + Object.keys(params).sort().map((k) => enc(k) + '="' + enc(params[k]) + '"').join(', ');
}
"""


def oauth1_auth_js(provider: str) -> str:
    return f"""'use strict';
{SIGNER}
const P = '{provider}';
module.exports = {{
    type: 'oauth',
    definition: (init) => ({{
        accountNameFromProfileInfo: 'username',
        requestRequestToken: async (context) => {{
            const response = await context.httpRequest({{
                method: 'POST', url: P + '/initiate',
                headers: {{ Authorization: header('POST', P + '/initiate', init.consumerKey,
                    init.consumerSecret, null, null, {{ oauth_callback: init.callbackUrl }}) }},
            }});
            const found = new URLSearchParams(response.data);
            return {{ requestToken: found.get('oauth_token'), requestTokenSecret: found.get('oauth_token_secret') }};
        }},
        authUrl: (context) => P + '/authorize?oauth_token=' + encodeURIComponent(context.requestToken),
        requestAccessToken: async (context) => {{
            const response = await context.httpRequest({{
                method: 'POST', url: P + '/token',
                headers: {{ Authorization: header('POST', P + '/token', init.consumerKey, init.consumerSecret,
                    context.requestToken, context.requestTokenSecret, {{ oauth_verifier: context.oauthVerifier }}) }},
            }});
            const found = new URLSearchParams(response.data);
            return {{ accessToken: found.get('oauth_token'), accessTokenSecret: found.get('oauth_token_secret') }};
        }},
        requestProfileInfo: async (context) => (await context.httpRequest({{
            url: P + '/me',
            headers: {{ Authorization: header('GET', P + '/me', init.consumerKey, init.consumerSecret,
                context.accessToken, context.accessTokenSecret) }},
        }})).data,
    }}),
}};
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider1]:
    with oauth1_provider() as found:
        yield found


@pytest.fixture(scope="module")
async def stack(infra: IsolatedInfra) -> AsyncIterator[Stack]:
    async with accounts_stack(infra, "oauth1", oauth_callback_url=CALLBACK) as found:
        yield found


async def test_an_oauth_1_account_is_connected_and_handed_to_components(
    stack: Stack, provider: Provider1
) -> None:
    ws = unique("w")
    name = f"{unique('legacy')}.notes"
    service = name.replace(".", ":")
    await stack.publish(connector_zip(name, oauth1_auth_js(provider.url)))
    await stack.workspace(ws, ["ann@acme.test", "bob@acme.test"])
    await stack.install(ws, name)
    ann, bob = stack.headers("ann@acme.test", ws), stack.headers("bob@acme.test", ws)
    consumer = provider.register(CALLBACK)
    stored = await stack.client.put(
        f"/v1/auth-services/{service}",
        json={"client_id": consumer.client_id, "client_secret": consumer.client_secret},
        headers=stack.operator,
    )
    assert stored.status_code == 200, stored.text

    refused = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts", json={"service": service}, headers=ann
    )
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/connect-required")

    started = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/connect", json={"service": service}, headers=ann
    )
    assert started.status_code == 200, started.text
    async with httpx.AsyncClient() as browser:
        redirected = await browser.get(started.json()["authorize_url"])
    assert redirected.status_code == 302, redirected.text
    back = httpx.URL(redirected.headers["location"])
    assert str(back.copy_with(query=None)) == CALLBACK
    callback = {
        "state": back.params["state"],
        "oauth_token": back.params["oauth_token"],
        "oauth_verifier": back.params["oauth_verifier"],
    }
    stolen = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/callback", json=callback, headers=bob
    )
    assert stolen.status_code == 403
    wrong = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/callback",
        json={**callback, "oauth_token": "not-this-one"},
        headers=ann,
    )
    assert wrong.status_code == 422
    # The refusal rolled back: the sign-in can still be finished by its owner.
    connected = await stack.client.post(
        f"/v1/workspaces/{ws}/accounts/callback", json=callback, headers=ann
    )
    assert connected.status_code == 201, connected.text
    account = connected.json()
    assert (account["name"], account["type"], account["owner"]) == (
        "ann-on-legacy",
        "oauth",
        "ann@acme.test",
    )
    path = f"/v1/workspaces/{ws}/accounts/{account['id']}"
    auth = (
        await stack.client.get(
            f"{path}/credentials", headers=stack.headers("runtime", role=Role.service)
        )
    ).json()["auth"]
    assert set(auth) == {
        "accessToken",
        "accessTokenSecret",
        "consumerKey",
        "consumerSecret",
        "profileInfo",  # requestProfileInfo's answer at sign-in (context.auth.profileInfo)
    }
    assert set(auth["profileInfo"]) == {"id", "username"}
    assert auth["consumerKey"] == consumer.client_id
    assert auth["accessToken"] in provider.tokens
    assert auth["accessTokenSecret"] not in connected.text
    tested = await stack.client.post(f"{path}/test", headers=ann)
    assert tested.json() == {**tested.json(), "valid": True}
