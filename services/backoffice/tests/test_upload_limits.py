"""The upload's body before authentication (issue 17, hole 9): the console served over a socket
is sent 50 MB multipart uploads. Nobody signed in: the sign-in answer comes before the upload is
read. An operator past the cap: 413 from the declared length, before it is read. Neither reaches
the registry (the console's upstreams here answer nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from modyard.backoffice.app import create_app
from modyard.backoffice.console import TOKEN_COOKIE
from modyard.backoffice.csrf import CSRF_COOKIE, CSRF_HEADER, token_for
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.auth import Role, mint_token
from modyard.testing.large_bodies import post_large_body
from modyard.testing.services import served

HOST = "127.0.0.1"
FIFTY_MB = 50 * 1024 * 1024
BOUNDARY = "modyard-upload-test"
NOWHERE = "http://127.0.0.1:9"
MULTIPART = {
    "content_type": f"multipart/form-data; boundary={BOUNDARY}",
    # A well-formed upload of one big file, so that a server reading it reads all of it.
    "prefix": (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=archive; filename=big.zip\r\n"
        "Content-Type: application/zip\r\n\r\n"
    ).encode(),
    "suffix": f"\r\n--{BOUNDARY}--\r\n".encode(),
}


@pytest.fixture(scope="module")
async def console() -> AsyncIterator[tuple[int, BackofficeSettings]]:
    settings = BackofficeSettings(
        registry_url=NOWHERE,
        installer_url=NOWHERE,
        runtime_url=NOWHERE,
        deployer_url=NOWHERE,
        gateway_url=NOWHERE,
        max_upload_bytes=1024 * 1024,
    )
    async with served(create_app(settings)) as bound:
        yield bound, settings


def _headers(settings: BackofficeSettings, session: str) -> dict[str, str]:
    """Cookies and a valid CSRF token for ``session`` (the token cookie, empty when signed out),
    so that only the sign-in or the size can refuse the upload."""
    nonce = "n" * 43
    cookies = f"{CSRF_COOKIE}={nonce}" + (f"; {TOKEN_COOKIE}={session}" if session else "")
    csrf = token_for(settings.jwt_secret.get_secret_value(), nonce, session)
    return {"Cookie": cookies, CSRF_HEADER: csrf, "HX-Request": "true"}


async def test_an_upload_from_nobody_is_answered_before_it_is_read(
    console: tuple[int, BackofficeSettings],
) -> None:
    port, settings = console
    answer = await post_large_body(
        HOST, port, "/upload", size=FIFTY_MB, headers=_headers(settings, ""), **MULTIPART
    )
    assert answer.status == 401, answer.body[:500]
    assert answer.headers["hx-redirect"].startswith("/sign-in")
    assert answer.sent < FIFTY_MB  # answered before the client could finish sending


async def test_an_operators_upload_past_the_cap_is_413_before_it_is_read(
    console: tuple[int, BackofficeSettings],
) -> None:
    port, settings = console
    operator = mint_token(settings, subject="ops", roles=[Role.operator])
    answer = await post_large_body(
        HOST, port, "/upload", size=FIFTY_MB, headers=_headers(settings, operator), **MULTIPART
    )
    assert answer.status == 413, answer.body[:500]
    assert f"larger than {settings.max_upload_bytes} bytes" in answer.body.decode()
    assert answer.sent < FIFTY_MB
