"""Accounts in the console, driven in Debian's Chromium (headless, Playwright): an operator sets
an auth service's OAuth client, then connects an account with the whole authorization code flow
(PKCE, signed state) against a real provider on loopback (authlib's authorization server), and
sees it listed; an API-key service's form comes from its auth.js and a refusal shows the
vendor's words. The registry and the installer are real processes, the JavaScript runner runs
auth.js (in process, served on loopback), the backoffice is a real process."""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from playwright.async_api import async_playwright, expect

from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings
from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import free_port, served, service_process

# The provider and the look-alike connectors are the installer's accounts test fixtures.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "installer" / "tests"))

from accounts_env import SHARED_CACHE, connector_zip
from oauth_provider import oauth_provider

pytestmark = pytest.mark.infra

CHROMIUM = "/usr/bin/chromium"


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


@asynccontextmanager
async def vendor() -> AsyncIterator[str]:
    async def me(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer key-good":
            return web.json_response(
                {"message": "Invalid API key: check Settings > API"}, status=401
            )
        return web.json_response({"user": {"email": "ops@vendor.test"}})

    app = web.Application()
    app.router.add_get("/me", me)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_an_operator_sets_a_client_and_connects_an_oauth_account_in_chromium(
    infra: IsolatedInfra,
) -> None:
    ws = f"bacc{uuid.uuid4().hex[:6]}"
    oauth_name, key_name = f"prov{uuid.uuid4().hex[:6]}.hub", f"keys{uuid.uuid4().hex[:6]}.crm"
    oauth_service, key_service = oauth_name.replace(".", ":"), key_name.replace(".", ":")
    operator = mint_token(CommonSettings(), subject="ops@example.com", roles=[Role.operator])
    headers = {"Authorization": f"Bearer {operator}"}
    with oauth_provider() as provider:
        async with (
            vendor() as vendor_url,
            service_process(
                "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "reg_bacc"}
            ) as registry,
        ):
            # Picked once the servers that bind a port of their own are up: picked before, the
            # vendor's server could be given one of them (a port free then is free to anyone).
            runner_port, installer_port, backoffice_port = free_port(), free_port(), free_port()
            backoffice_url = f"http://127.0.0.1:{backoffice_port}"
            client_app = provider.register(f"{backoffice_url}/oauth/callback")
            runner_app = create_runner(
                JsRunnerSettings(
                    database_url=infra.database_url,
                    amqp_url=infra.amqp_url,
                    registry_url=registry.url,
                    db_schema="js_runner_bacc",
                    cache_dir=str(SHARED_CACHE),
                    egress_allow_loopback=True,
                )
            )
            installer_env = {
                **infra.env(),
                "MODYARD_INSTALLER_DB_SCHEMA": "inst_bacc",
                "MODYARD_REGISTRY_URL": registry.url,
                "MODYARD_INSTALLER_JS_RUNNER_URL": f"http://127.0.0.1:{runner_port}",
                "MODYARD_INSTALLER_OAUTH_CALLBACK_URL": f"{backoffice_url}/oauth/callback",
            }
            async with (
                served(runner_app, port=runner_port),
                service_process("installer", installer_env, port=installer_port) as installer,
                service_process(
                    "backoffice",
                    {
                        **infra.env(),
                        "MODYARD_REGISTRY_URL": registry.url,
                        "MODYARD_INSTALLER_URL": installer.url,
                        "MODYARD_RUNTIME_URL": "http://127.0.0.1:9",
                        "MODYARD_DEPLOYER_URL": "http://127.0.0.1:9",
                    },
                    port=backoffice_port,
                ),
                httpx.AsyncClient(headers=headers, timeout=60) as api,
            ):
                for name, auth_js in (
                    (oauth_name, oauth_auth_js(provider.url)),
                    (key_name, None),
                ):
                    data = connector_zip(name, auth_js) if auth_js else connector_zip(name)
                    published = await api.post(
                        f"{registry.url}/v1/modules",
                        content=data,
                        headers={"content-type": "application/zip"},
                    )
                    assert published.status_code == 201, published.text
                created = await api.post(
                    f"{installer.url}/v1/workspaces", json={"slug": ws, "name": ws}
                )
                assert created.status_code == 201, created.text
                for name in (oauth_name, key_name):
                    installed = await api.post(
                        f"{installer.url}/v1/workspaces/{ws}/installations", json={"module": name}
                    )
                    assert installed.status_code == 201, installed.text
                await _browse(
                    backoffice_url,
                    operator,
                    ws,
                    oauth_service,
                    key_service,
                    client_app.client_id,
                    client_app.client_secret,
                    vendor_url,
                )


async def _browse(
    url: str,
    token: str,
    ws: str,
    oauth_service: str,
    key_service: str,
    client_id: str,
    client_secret: str,
    vendor_url: str,
) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = await browser.new_context(base_url=url)
            context.set_default_timeout(20_000)
            page = await context.new_page()
            await page.goto("/accounts")
            await page.get_by_label("Operator token").fill(token)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_label("Workspace").select_option(ws)
            await page.get_by_role("button", name="Show").click()

            await page.get_by_role("link", name="Auth services").click()
            await page.get_by_label("Auth service").fill(oauth_service)
            await page.get_by_label("Client id").fill(client_id)
            await page.get_by_label("Client secret").fill(client_secret)
            await page.get_by_role("button", name="Save").click()
            await expect(page.locator("p.notice")).to_contain_text(
                f"OAuth client of {oauth_service} saved."
            )
            await expect(page.get_by_role("cell", name=client_id)).to_be_visible()
            assert client_secret not in await page.content()

            # The API-key service's form is auth.js's; the vendor's refusal shows in its words.
            await page.get_by_role("link", name="Accounts").click()
            await page.get_by_label("API Key").fill("key-wrong")
            await page.get_by_label("Base URL").fill(vendor_url)
            await page.get_by_role("button", name=f"Add account of {key_service}").click()
            await expect(page.locator("#messages")).to_contain_text(
                "Invalid API key: check Settings > API"
            )
            await page.get_by_label("API Key").fill("key-good")
            await page.get_by_label("Base URL").fill(vendor_url)
            await page.get_by_role("button", name=f"Add account of {key_service}").click()
            await expect(page.locator("p.notice")).to_contain_text(
                f"Added ops@vendor.test ({key_service})."
            )

            # Connect account: to the provider, back through the callback, listed.
            await page.get_by_role("link", name=f"Connect account of {oauth_service}").click()
            await expect(page).to_have_url(re.compile(r"/accounts\?notice="))
            await expect(page.locator("p.notice")).to_contain_text(
                f"Connected ann@provider.test ({oauth_service})."
            )
            row = page.get_by_role("row", name=re.compile("ann@provider.test"))
            await expect(row).to_contain_text("oauth2")
            await expect(row).to_contain_text("valid")
            await row.get_by_role("button", name="Test ann@provider.test", exact=True).click()
            await expect(page.locator("p.notice")).to_contain_text("ann@provider.test works.")
        finally:
            await browser.close()
