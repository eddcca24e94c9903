"""Modyard's JWTs, without any web framework: what a token says (:class:`Principal`), minting and
verifying. The CLI and SDK use this module alone; :mod:`modyard.common.auth` adds the FastAPI
dependencies that services put on their routes.

A token names its subject (``sub``), its roles and the workspaces it may act in. ``operator`` may do
everything, ``service`` is for service-to-service calls, ``user`` is confined to its workspaces
(and to ACL rules).

Two optional claims serve AppCell action security (the gateway): ``products``, the customer products
the subject owns (``public`` actions), and ``permissions``, the RBAC permissions the billing system
granted it (``rbac::<permission>`` actions). Tokens without them are read as owning and granting
nothing.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt

from modyard.common.settings import CommonSettings

DEFAULT_TOKEN_TTL_SECONDS = 3600
MAX_TOKEN_TTL_SECONDS = 366 * 24 * 3600


class Role(StrEnum):
    operator = "operator"
    user = "user"
    service = "service"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as proven by a verified token."""

    subject: str
    roles: frozenset[Role]
    workspaces: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None
    #: Customer products the subject owns (AppCell ``public`` security).
    products: frozenset[str] = field(default_factory=frozenset)
    #: RBAC permissions granted to the subject (AppCell ``rbac::<permission>`` security).
    permissions: frozenset[str] = field(default_factory=frozenset)

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_operator(self) -> bool:
        return Role.operator in self.roles

    def can_access_workspace(self, workspace: str) -> bool:
        return self.is_operator or Role.service in self.roles or workspace in self.workspaces


class TokenError(ValueError):
    """The token is missing, malformed, expired or not signed by our secret."""


def mint_token(
    settings: CommonSettings,
    *,
    subject: str,
    roles: Sequence[Role | str],
    workspaces: Sequence[str] = (),
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
    products: Sequence[str] = (),
    permissions: Sequence[str] = (),
) -> str:
    if not subject:
        raise ValueError("a token needs a subject")
    if not 0 < ttl_seconds <= MAX_TOKEN_TTL_SECONDS:
        raise ValueError(f"ttl_seconds must be between 1 and {MAX_TOKEN_TTL_SECONDS}")
    parsed_roles = sorted({Role(role) for role in roles})
    if not parsed_roles:
        raise ValueError("a token needs at least one role")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "roles": [role.value for role in parsed_roles],
        "workspaces": sorted(set(workspaces)),
    }
    # Only when given, so that ordinary tokens stay as small as they were.
    if products:
        claims["products"] = sorted({str(product) for product in products})
    if permissions:
        claims["permissions"] = sorted({str(permission) for permission in permissions})
    return jwt.encode(
        claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm
    )


def decode_token(settings: CommonSettings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            leeway=30,
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("the token has expired; mint a new one") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(f"the token is not valid: {exc}") from exc
    roles_claim = claims.get("roles")
    workspaces_claim = claims.get("workspaces", [])
    if not isinstance(roles_claim, list) or not isinstance(workspaces_claim, list):
        raise TokenError("the token's 'roles' and 'workspaces' claims must be lists")
    try:
        roles = frozenset(Role(role) for role in roles_claim)
    except ValueError as exc:
        raise TokenError(f"the token names an unknown role; known: {list(Role)}") from exc
    if not roles:
        raise TokenError("the token carries no role")
    products_claim = claims.get("products", [])
    permissions_claim = claims.get("permissions", [])
    if not isinstance(products_claim, list) or not isinstance(permissions_claim, list):
        raise TokenError("the token's 'products' and 'permissions' claims must be lists")
    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        workspaces=frozenset(str(workspace) for workspace in workspaces_claim),
        token_id=claims.get("jti"),
        products=frozenset(str(product) for product in products_claim),
        permissions=frozenset(str(permission) for permission in permissions_claim),
    )


class VerifiedTokens:
    """Verified tokens, remembered briefly: a caller sends the same token with many requests, and
    verifying a JWT costs more than a short request's own work.

    A token is remembered at most ``remember_seconds`` after it was verified. That stays within
    the 30 s of leeway :func:`decode_token` grants on expiry, so no token is accepted longer than
    ``decode_token`` would accept it anyway; tokens are stateless (no revocation to miss).
    """

    def __init__(
        self, settings: CommonSettings, *, remember_seconds: float = 30.0, most: int = 10_000
    ) -> None:
        self._settings = settings
        self._remember = remember_seconds
        self._most = most
        self._known: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def principal(self, token: str) -> Principal:
        """The token's principal; raises :class:`TokenError` like :func:`decode_token`."""
        now = time.monotonic()
        known = self._known.get(token)
        if known is not None and known[0] > now:
            return known[1]
        principal = decode_token(self._settings, token)
        self._known[token] = (now + self._remember, principal)
        self._known.move_to_end(token)
        while len(self._known) > self._most:
            self._known.popitem(last=False)
        return principal
