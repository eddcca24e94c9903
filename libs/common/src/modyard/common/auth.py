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
from modyard.common.token_denials import DenialsSource, InstallerDenials, follow
from modyard.common.tokens import (
    DEFAULT_TOKEN_TTL_SECONDS,
    MAX_TOKEN_TTL_SECONDS,
    Principal,
    Role,
    TokenDenials,
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
    "TokenDenials",
    "TokenError",
    "VerifiedTokens",
    "authenticate",
    "bearer_principal",
    "decode_token",
    "follow_token_denials",
    "mint_token",
    "require_roles",
    "token_denials",
    "verified_tokens",
]


def token_denials(app: FastAPI) -> TokenDenials:
    """The app's revoked tokens and workspace removals (one per process, made on first use)."""
    denials: TokenDenials | None = getattr(app.state, "token_denials", None)
    if denials is None:
        denials = app.state.token_denials = TokenDenials()
    return denials


def verified_tokens(app: FastAPI) -> VerifiedTokens:
    """The app's remembered tokens, made on first use from its settings."""
    tokens: VerifiedTokens | None = getattr(app.state, "verified_tokens", None)
    if tokens is None:
        settings: CommonSettings = app.state.settings
        tokens = app.state.verified_tokens = VerifiedTokens(settings, denials=token_denials(app))
    return tokens


async def follow_token_denials(app: FastAPI) -> None:
    """Keep the app's :func:`token_denials` current until cancelled: from
    ``app.state.token_denials_source`` when the service set one (the installer reads its own
    tables), from the installer's API otherwise."""
    settings: CommonSettings = app.state.settings
    source: DenialsSource = getattr(app.state, "token_denials_source", None) or InstallerDenials(
        settings
    )
    await follow(token_denials(app), source, settings.token_denials_poll_seconds)


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
