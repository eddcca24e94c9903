"""Who is signed in, and the client that calls the other services on their behalf.

The operator's token lives in an HttpOnly, SameSite=Strict cookie: page scripts cannot read it,
and other sites cannot make the browser send it (which is what protects the console's forms from
cross-site requests). The backoffice verifies it with the shared JWT secret on every request and
forwards it unchanged, so each service still decides for itself what the operator may do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

import httpx
from fastapi import Depends, Request

from modyard.backoffice.context import SLOT
from modyard.common.tokens import Principal, TokenError
from modyard.sdk.client import ModyardClient

TOKEN_COOKIE = "modyard_token"  # noqa: S105 - a cookie name
WORKSPACE_COOKIE = "modyard_workspace"


#: Why the sign-in page is shown, by the code in its ``reason`` parameter: only these words are
#: ever shown there (a link cannot make the page say something else).
SIGN_IN_REASONS = {
    "required": "Sign in to use the console.",
    "refused": "Your token was refused or has expired: sign in again.",
    "not-operator": "That token is not an operator's; the console is for operators.",
}


class SignInRequired(Exception):
    """No usable token: the handler sends the browser to the sign-in page."""

    def __init__(self, reason: str, next_path: str = "/modules") -> None:
        super().__init__(reason)
        self.reason = reason
        self.next_path = next_path


class SharedTransport(httpx.AsyncBaseTransport):
    """The app's one connection pool, lent to each request's client: closing that client must not
    close the pool (the app closes it at shutdown)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class Console:
    """One request of a signed-in operator."""

    principal: Principal
    client: ModyardClient
    workspace: str


def sign_in_path(next_path: str, reason: str | None = None) -> str:
    query = {"next": next_path, **({"reason": reason} if reason else {})}
    return f"/sign-in?{urlencode(query)}"


async def console(request: Request) -> AsyncIterator[Console]:
    context = SLOT.get(request)
    settings, tokens = context.settings, context.tokens
    next_path = request.url.path if request.method == "GET" else "/modules"
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise SignInRequired("required", next_path)
    try:
        principal = tokens.principal(token)
    except TokenError as exc:
        raise SignInRequired("refused", next_path) from exc
    if not principal.is_operator:
        raise SignInRequired("not-operator")
    workspace = request.cookies.get(WORKSPACE_COOKIE) or settings.default_workspace
    client = ModyardClient(
        settings.service_urls(),
        token=token,
        timeout=settings.upstream_timeout_seconds,
        transport=SharedTransport(context.pool),
    )
    async with client:
        yield Console(principal=principal, client=client, workspace=workspace)


ConsoleDep = Annotated[Console, Depends(console)]
