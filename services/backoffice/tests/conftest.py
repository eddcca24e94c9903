"""The backoffice in process (httpx's ASGI client) in front of the real services it calls."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from modyard.backoffice.app import create_app
from modyard.backoffice.console import TOKEN_COOKIE, WORKSPACE_COOKIE
from modyard.backoffice.csrf import CSRF_COOKIE, CSRF_HEADER, token_for
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings
from modyard.testing.backoffice import Upstreams, upstream_cluster
from modyard.testing.infra import IsolatedInfra
from modyard.testing.runtime import unprocessed_messages
from modyard.testing.services import in_process

WS = "console"


@dataclass
class Backoffice:
    app: FastAPI
    #: Signed in as an operator, showing workspace ``WS``.
    client: httpx.AsyncClient
    #: The upstream services' APIs, called directly with an operator token (for setup).
    api: httpx.AsyncClient
    upstreams: Upstreams

    def anonymous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://service"
        )

    def url(self, service: str) -> str:
        return self.upstreams.processes[service].url


def token(*roles: Role) -> str:
    return mint_token(CommonSettings(), subject="ops@example.com", roles=roles or [Role.operator])


@pytest.fixture(scope="module")
async def upstreams(infra: IsolatedInfra) -> AsyncIterator[Upstreams]:
    async with upstream_cluster(infra.env()) as cluster:
        yield cluster


@pytest.fixture(scope="module")
async def bo(upstreams: Upstreams) -> AsyncIterator[Backoffice]:
    urls = upstreams.processes
    settings = BackofficeSettings(
        registry_url=urls["registry"].url,
        installer_url=urls["installer"].url,
        runtime_url=urls["runtime"].url,
        deployer_url=urls["deployer"].url,
        # Nothing listens there: the pages that need the gateway say so (none does yet).
        gateway_url="http://127.0.0.1:9",
        default_workspace=WS,
        poll_seconds=1,
    )
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {token()}"}
    async with (
        in_process(app) as client,
        httpx.AsyncClient(headers=headers, timeout=60) as api,
    ):
        # The readiness probe got a CSRF nonce cookie for the host: start from an empty jar, so
        # that no cookie below is sent twice under two domains.
        client.cookies.clear()
        signed_in = token()
        client.cookies.set(TOKEN_COOKIE, signed_in)
        client.cookies.set(WORKSPACE_COOKIE, WS)
        # As htmx does: every request carries the CSRF token of this session (csrf.py).
        client.cookies.set(CSRF_COOKIE, "test-nonce")
        secret = settings.jwt_secret.get_secret_value()
        client.headers[CSRF_HEADER] = token_for(secret, "test-nonce", signed_in)
        created = await api.post(
            f"{urls['installer'].url}/v1/workspaces", json={"slug": WS, "name": "Console"}
        )
        assert created.status_code == 201, created.text
        yield Backoffice(app=app, client=client, api=api, upstreams=upstreams)


async def fail_messages(api: httpx.AsyncClient, runtime: str, count: int) -> tuple[str, list[str]]:
    """A flow whose node fails for good, and ``count`` messages it gave up on."""
    return await unprocessed_messages(api, runtime, WS, count)


def form_token(page: str) -> str:
    """The CSRF token a page's forms carry, read as a browser submits it."""
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
