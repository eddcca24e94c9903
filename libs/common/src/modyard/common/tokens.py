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

Every minted token carries a ``jti`` (its id) and lives at most as long as the settings allow
(``MODYARD_TOKEN_MAX_TTL_SECONDS`` for user tokens, ``MODYARD_OPERATOR_TOKEN_MAX_TTL_SECONDS`` for
operator and service tokens): a token without an id or with a longer life (``exp - iat``) is
refused, whoever signed it. :class:`TokenDenials` is what every service knows of revoked tokens
and of users removed from workspaces since their token was minted (the installer owns both and
every service follows them, see :mod:`modyard.common.token_denials`).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt

from modyard.common.settings import CommonSettings

DEFAULT_TOKEN_TTL_SECONDS = 3600
#: The longest life any setting may allow (a year); the effective limits are the settings'.
MAX_TOKEN_TTL_SECONDS = 366 * 24 * 3600
#: Leeway granted on ``exp``/``nbf`` between clocks (and on the TTL check, for the same reason).
CLOCK_LEEWAY_SECONDS = 30


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
    #: When the token expires (``exp``, Unix seconds): how long its revocation must be kept.
    expires_at: int | None = None

    def has_role(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_operator(self) -> bool:
        return Role.operator in self.roles

    def can_access_workspace(self, workspace: str) -> bool:
        return self.is_operator or Role.service in self.roles or workspace in self.workspaces


class TokenError(ValueError):
    """The token is missing, malformed, expired, revoked, too long-lived or not signed by our
    secret."""


def max_ttl_seconds(settings: CommonSettings, roles: Iterable[Role | str]) -> int:
    """The longest life a token with ``roles`` may have: the operator limit when it holds an
    operator or service role, the user limit otherwise."""
    privileged = {Role(role) for role in roles} & {Role.operator, Role.service}
    return settings.operator_token_max_ttl_seconds if privileged else settings.token_max_ttl_seconds


def _ttl_setting(settings: CommonSettings, roles: Iterable[Role | str]) -> str:
    privileged = {Role(role) for role in roles} & {Role.operator, Role.service}
    return (
        "MODYARD_OPERATOR_TOKEN_MAX_TTL_SECONDS" if privileged else "MODYARD_TOKEN_MAX_TTL_SECONDS"
    )


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
    parsed_roles = sorted({Role(role) for role in roles})
    if not parsed_roles:
        raise ValueError("a token needs at least one role")
    longest = max_ttl_seconds(settings, parsed_roles)
    if not 0 < ttl_seconds <= longest:
        raise ValueError(
            f"ttl_seconds must be between 1 and {longest} for a token with roles "
            f"{[role.value for role in parsed_roles]} ({_ttl_setting(settings, parsed_roles)}); "
            "mint a shorter-lived token"
        )
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
            options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            leeway=CLOCK_LEEWAY_SECONDS,
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
    # Checked on the claims, not only when minting: anyone holding the secret can sign a token,
    # and a stolen long-lived one is what the limit is for.
    life, longest = int(claims["exp"]) - int(claims["iat"]), max_ttl_seconds(settings, roles)
    if life > longest + CLOCK_LEEWAY_SECONDS:
        raise TokenError(
            f"the token lives {life} s, longer than the {longest} s "
            f"{_ttl_setting(settings, roles)} allows; mint a shorter-lived one"
        )
    products_claim = claims.get("products", [])
    permissions_claim = claims.get("permissions", [])
    if not isinstance(products_claim, list) or not isinstance(permissions_claim, list):
        raise TokenError("the token's 'products' and 'permissions' claims must be lists")
    return Principal(
        subject=str(claims["sub"]),
        roles=roles,
        workspaces=frozenset(str(workspace) for workspace in workspaces_claim),
        token_id=str(claims["jti"]),
        products=frozenset(str(product) for product in products_claim),
        permissions=frozenset(str(permission) for permission in permissions_claim),
        expires_at=int(claims["exp"]),
    )


@dataclass(frozen=True)
class Denials:
    """One snapshot of what the installer refuses beyond a token's signature."""

    #: Ids (``jti``) of revoked tokens, with when each token expires anyway (Unix seconds).
    revoked: dict[str, int] = field(default_factory=dict)
    #: Workspaces each subject was removed from: their tokens no longer reach them.
    excluded: dict[str, frozenset[str]] = field(default_factory=dict)


class TokenDenials:
    """What this process knows of revoked tokens and of workspace removals: a snapshot replaced
    as a whole by whoever follows the installer, read on every request (two dict lookups)."""

    def __init__(self) -> None:
        self._denials = Denials()
        #: Revocations this process made itself (the installer), kept until the next snapshot.
        self._local: dict[str, int] = {}
        #: Monotonic time of the last snapshot (``None``: none yet).
        self.updated_at: float | None = None

    def replace(self, denials: Denials) -> None:
        self._denials = denials
        self._local = {jti: exp for jti, exp in self._local.items() if jti not in denials.revoked}
        self.updated_at = time.monotonic()

    def revoke(self, token_id: str, expires_at: int) -> None:
        """Refuse ``token_id`` here at once (the snapshot will carry it from the next refresh)."""
        self._local[token_id] = expires_at

    def apply(self, principal: Principal) -> Principal:
        """``principal`` less what is denied: raises :class:`TokenError` for a revoked token,
        drops the workspaces its subject was removed from."""
        token_id = principal.token_id
        if token_id is not None and (token_id in self._denials.revoked or token_id in self._local):
            raise TokenError("the token was revoked; mint or ask for a new one")
        removed = self._denials.excluded.get(principal.subject)
        if removed and principal.workspaces & removed:
            return dataclasses.replace(principal, workspaces=principal.workspaces - removed)
        return principal


class VerifiedTokens:
    """Verified tokens, remembered briefly: a caller sends the same token with many requests, and
    verifying a JWT costs more than a short request's own work.

    A token is remembered at most ``remember_seconds`` after it was verified. That stays within
    the 30 s of leeway :func:`decode_token` grants on expiry, so no token is accepted longer than
    ``decode_token`` would accept it anyway. Revocations and workspace removals
    (:class:`TokenDenials`) are applied on every call, remembered or not.
    """

    def __init__(
        self,
        settings: CommonSettings,
        *,
        remember_seconds: float = 30.0,
        most: int = 10_000,
        denials: TokenDenials | None = None,
    ) -> None:
        self._settings = settings
        self._remember = remember_seconds
        self._most = most
        self._known: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self.denials = denials or TokenDenials()

    def principal(self, token: str) -> Principal:
        """The token's principal; raises :class:`TokenError` like :func:`decode_token`, and for
        a revoked token."""
        now = time.monotonic()
        known = self._known.get(token)
        if known is not None and known[0] > now:
            return self.denials.apply(known[1])
        principal = decode_token(self._settings, token)
        self._known[token] = (now + self._remember, principal)
        self._known.move_to_end(token)
        while len(self._known) > self._most:
            self._known.popitem(last=False)
        return self.denials.apply(principal)
