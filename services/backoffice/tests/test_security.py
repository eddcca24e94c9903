"""The console's defences against other sites: CSRF tokens on every unsafe request (a refused
request changes nothing), security headers on every response, Secure cookies outside development."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from modyard.backoffice.app import create_app
from modyard.backoffice.console import TOKEN_COOKIE
from modyard.backoffice.csrf import CSRF_COOKIE, CSRF_HEADER, token_for
from modyard.backoffice.security_headers import CONTENT_SECURITY_POLICY
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.auth import Role, mint_token
from modyard.testing.backoffice import module_zip
from modyard.testing.services import in_process

from .conftest import Backoffice, form_token, token

pytestmark = pytest.mark.infra

HOOK_URL = "http://127.0.0.1:9/csrf-hooks"


@pytest.fixture
async def browser(bo: Backoffice) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in browser with no CSRF header of its own: it sends what the pages give it."""
    async with bo.anonymous() as client:
        client.cookies.set(TOKEN_COOKIE, token())
        yield client


async def hooks(bo: Backoffice) -> list[str]:
    listed = await bo.api.get(f"{bo.url('runtime')}/v1/system-webhooks")
    assert listed.status_code == 200, listed.text
    return sorted(item["url"] for item in listed.json()["items"])


async def registry_has(bo: Backoffice, name: str) -> bool:
    found = await bo.api.get(f"{bo.url('registry')}/v1/modules/{name}")
    return found.status_code == 200


def add_hook_form(csrf: str | None = None) -> dict[str, str]:
    form = {"url": HOOK_URL, "events": "flow.stopped", "secret": "s" * 16}
    return form | ({"csrf_token": csrf} if csrf is not None else {})


async def test_a_form_post_without_or_with_a_wrong_csrf_token_is_refused_and_changes_nothing(
    bo: Backoffice, browser: httpx.AsyncClient
) -> None:
    page = await browser.get("/webhooks")
    assert page.status_code == 200
    good = form_token(page.text)
    before = await hooks(bo)

    # Another session's valid pair (an attacker's own visit): bound to another token cookie.
    foreign = token_for(
        bo.app.state.settings.jwt_secret.get_secret_value(),
        browser.cookies[CSRF_COOKIE],
        "someone-elses-session",
    )
    for label, form, headers in [
        ("no token", add_hook_form(), {}),
        ("wrong token", add_hook_form("0" * 64), {}),
        ("another session's token", add_hook_form(foreign), {}),
        ("wrong header", add_hook_form(), {CSRF_HEADER: "forged"}),
    ]:
        refused = await browser.post("/webhooks", data=form, headers=headers)
        assert refused.status_code == 403, f"{label}: {refused.status_code} {refused.text[:300]}"
        assert "Reload the page" in refused.text, label
        assert await hooks(bo) == before, label

    # The nonce cookie is part of the pair: a request without it is refused too.
    async with bo.anonymous() as cookieless:
        cookieless.cookies.set(TOKEN_COOKIE, browser.cookies[TOKEN_COOKIE])
        refused = await cookieless.post("/webhooks", data=add_hook_form(good))
        assert refused.status_code == 403
    assert await hooks(bo) == before

    added = await browser.post("/webhooks", data=add_hook_form(good))
    assert added.status_code == 303, added.text
    assert await hooks(bo) == sorted([*before, HOOK_URL])


async def test_htmx_requests_send_the_token_in_a_header_and_are_refused_without_it(
    bo: Backoffice, browser: httpx.AsyncClient
) -> None:
    page = (await browser.get("/upload")).text
    # htmx sends hx-headers of <body> with every request it makes.
    assert f'hx-headers=\'{{"{CSRF_HEADER}": "{form_token(page)}"}}\'' in page
    name = f"csrf-{uuid.uuid4().hex[:6]}"
    archive = {"archive": (f"{name}.zip", module_zip(name), "application/zip")}

    refused = await browser.post("/upload", files=archive, headers={"HX-Request": "true"})
    assert refused.status_code == 403
    assert not await registry_has(bo, name)

    uploaded = await browser.post(
        "/upload", files=archive, headers={"HX-Request": "true", CSRF_HEADER: form_token(page)}
    )
    assert uploaded.status_code == 204, uploaded.text
    assert await registry_has(bo, name)


async def test_the_upload_form_without_javascript_carries_the_token_in_its_action(
    bo: Backoffice, browser: httpx.AsyncClient
) -> None:
    page = (await browser.get("/upload")).text
    action = f'action="/upload?csrf_token={form_token(page)}"'
    assert action in page
    name = f"plain-{uuid.uuid4().hex[:6]}"
    uploaded = await browser.post(
        f"/upload?csrf_token={form_token(page)}",
        files={"archive": (f"{name}.zip", module_zip(name), "application/zip")},
    )
    assert uploaded.status_code == 303, uploaded.text
    assert await registry_has(bo, name)


async def test_every_form_of_every_page_carries_the_token(
    bo: Backoffice, browser: httpx.AsyncClient
) -> None:
    for path in ("/modules", "/upload", "/unprocessed", "/deployments", "/flows", "/webhooks"):
        page = (await browser.get(path)).text
        forms = page.count('method="post"')
        assert forms >= 2, path  # the header's workspace picker and sign-out, at least
        assert page.count('name="csrf_token"') == forms, path


@pytest.mark.parametrize(
    "path",
    [
        "/sign-in",
        "/modules",
        "/upload",
        "/unprocessed",
        "/deployments",
        "/flows",
        "/webhooks",
        "/webhooks/00000000-0000-0000-0000-000000000000",  # a problem page (404)
        "/no-such-page",
        "/",  # a redirect
        "/static/htmx.min.js",
        "/healthz",
    ],
)
async def test_security_headers_are_on_every_response(
    browser: httpx.AsyncClient, path: str
) -> None:
    response = await browser.get(path)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


async def test_a_refused_csrf_request_carries_the_headers_too(browser: httpx.AsyncClient) -> None:
    refused = await browser.post("/sign-out")
    assert refused.status_code == 403
    assert refused.headers["x-frame-options"] == "DENY"


async def test_pages_hold_no_inline_script_or_style(browser: httpx.AsyncClient) -> None:
    for path in ("/sign-in", "/modules", "/upload", "/deployments", "/webhooks"):
        page = (await browser.get(path)).text
        for inline in ("<script>", "<style", " style=", " onclick=", " onload="):
            assert inline not in page, (path, inline)


def test_cookies_are_secure_outside_development() -> None:
    assert not BackofficeSettings(environment="development").secure_cookies
    assert not BackofficeSettings(environment="test").secure_cookies
    assert BackofficeSettings(environment="test", cookie_secure=True).secure_cookies
    production = production_settings()
    assert production.secure_cookies
    with pytest.raises(ValueError, match="COOKIE_SECURE=false is refused"):
        production_settings(cookie_secure=False)


def production_settings(**overrides: object) -> BackofficeSettings:
    return BackofficeSettings(
        environment="production",
        jwt_secret="p" * 48,
        database_url="postgresql+asyncpg://prod:own-password@127.0.0.1:5432/modyard",
        amqp_url="amqp://prod:own-password@127.0.0.1:5672/modyard",
        image_registry_password="own-registry-password",
        **overrides,  # type: ignore[arg-type]
    )


async def test_production_sets_secure_cookies_on_sign_in() -> None:
    settings = production_settings()
    app = create_app(settings)
    async with in_process(app, ready=False) as client:
        form = await client.get("/sign-in")
        assert "secure" in form.headers["set-cookie"].lower()  # the CSRF nonce
        # A Secure cookie is not sent back over this plain-HTTP test client: send it by hand.
        csrf = token_for(settings.jwt_secret.get_secret_value(), "nonce", "")
        operator = mint_token(settings, subject="ops@example.com", roles=[Role.operator])
        signed_in = await client.post(
            "/sign-in",
            data={"token": operator, "csrf_token": csrf},
            headers={"Cookie": f"{CSRF_COOKIE}=nonce"},
        )
    assert signed_in.status_code == 303, signed_in.text
    (cookie,) = signed_in.headers.get_list("set-cookie")
    assert cookie.startswith(f"{TOKEN_COOKIE}=")
    assert "secure" in cookie.lower()
