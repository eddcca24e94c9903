"""Bearer authentication and role checks for the services' routes (FastAPI dependencies).

The token itself (claims, minting, verifying) is :mod:`modyard.common.tokens`, which this module
re-exports so that route code imports everything about callers from one place.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modyard.common.errors import Forbidden, Unauthorized
from modyard.common.settings import CommonSettings
from modyard.common.tokens import (
    DEFAULT_TOKEN_TTL_SECONDS,
    MAX_TOKEN_TTL_SECONDS,
    Principal,
    Role,
    TokenError,
    VerifiedTokens,
    decode_token,
    mint_token,
)

__all__ = [
    "DEFAULT_TOKEN_TTL_SECONDS",
    "MAX_TOKEN_TTL_SECONDS",
    "CurrentPrincipal",
    "Principal",
    "Role",
    "TokenError",
    "VerifiedTokens",
    "authenticate",
    "bearer_principal",
    "decode_token",
    "mint_token",
    "require_roles",
    "verified_tokens",
]


def verified_tokens(app: FastAPI) -> VerifiedTokens:
    """The app's remembered tokens, made on first use from its settings."""
    tokens: VerifiedTokens | None = getattr(app.state, "verified_tokens", None)
    if tokens is None:
        settings: CommonSettings = app.state.settings
        tokens = app.state.verified_tokens = VerifiedTokens(settings)
    return tokens


_bearer = HTTPBearer(auto_error=False, description="A modyard JWT (`modyard token` mints one)")


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller, or a 401 problem."""
    scheme, token = (credentials.scheme, credentials.credentials) if credentials else (None, None)
    return bearer_principal(verified_tokens(request.app), scheme, token)


_NO_BEARER = "Send 'Authorization: Bearer <token>'; `modyard token` mints a development token."


def bearer_principal(
    tokens: VerifiedTokens, scheme: str | None, token: str | None, *, missing: str = _NO_BEARER
) -> Principal:
    """The caller of an ``Authorization: <scheme> <token>`` header, or a 401 problem (routes
    served without FastAPI's dependencies and the gateway's AMQP ingress call it directly);
    ``missing`` says where the token goes when there is none."""
    if not token or scheme is None or scheme.lower() != "bearer":
        raise Unauthorized(missing)
    try:
        return tokens.principal(token)
    except TokenError as exc:
        raise Unauthorized(f"Send a valid bearer token: {exc}.") from exc


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency factory: the caller must hold one of ``roles`` (operators always pass)."""
    allowed = ", ".join(role.value for role in roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.is_operator or principal.has_role(*roles):
            return principal
        raise Forbidden(f"This needs one of the roles [{allowed}]; the token has none of them.")

    return dependency
