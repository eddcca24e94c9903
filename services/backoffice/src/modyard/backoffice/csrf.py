"""CSRF tokens: a signed double-submit token tied to the browser's session.

SameSite=Strict cookies already keep other sites' pages from posting with the operator's cookies;
the token also covers what SameSite does not (a sibling subdomain is "same site", an old browser
ignores the attribute). Every unsafe request must carry

    HMAC-SHA256(key, csrf nonce cookie + operator's token cookie)

in the ``X-CSRF-Token`` header (htmx sends it on every request, from ``hx-headers`` on
``<body>``) or in a ``csrf_token`` form field (plain forms; multipart forms carry it in their
action's query string, so that checking it never reads an upload). The key is derived from
``MODYARD_JWT_SECRET``, so a token cannot be forged without the secret, and it is bound to the
signed-in token, so a pair (nonce, token) obtained by an attacker's own visit is worthless in
the operator's browser. The nonce cookie is issued by :class:`SecurityHeadersMiddleware` with
the first page; a refused request is a 403 ``csrf-refused`` problem and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from fastapi import Request

from modyard.backoffice.console import TOKEN_COOKIE
from modyard.backoffice.context import SLOT
from modyard.common.errors import Forbidden

CSRF_COOKIE = "modyard_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


@cache
def _key(jwt_secret: str) -> bytes:
    # A key of its own, so that a CSRF token never doubles as anything signed with the JWT secret.
    return hmac.new(jwt_secret.encode(), b"modyard-backoffice-csrf", hashlib.sha256).digest()


def token_for(jwt_secret: str, nonce: str, session: str) -> str:
    message = f"{nonce}\x00{session}".encode()
    return hmac.new(_key(jwt_secret), message, hashlib.sha256).hexdigest()


def _nonce(request: Request) -> str | None:
    # A page rendered in the very response that issues the cookie reads it from the state.
    return request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf_nonce", None)


def csrf_token(request: Request) -> str:
    """The token a page embeds in its forms and in htmx's headers."""
    nonce = _nonce(request) or ""
    secret = SLOT.get(request).settings.jwt_secret.get_secret_value()
    return token_for(secret, nonce, request.cookies.get(TOKEN_COOKIE, ""))


async def require_csrf(request: Request) -> None:
    """Refuse an unsafe request whose CSRF token is missing or wrong (a dependency of every
    route: it runs before the handler, so a refused request changes nothing)."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER) or request.query_params.get(CSRF_FIELD)
    content_type = request.headers.get("content-type", "")
    if not sent and content_type.startswith(FORM_TYPES[0]):
        # FastAPI has parsed the form already for a handler with form fields (cached here).
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    nonce = request.cookies.get(CSRF_COOKIE)
    if not nonce or not sent or not hmac.compare_digest(sent, csrf_token(request)):
        raise Forbidden(
            "This form's security token is missing or out of date (cookies blocked, the page "
            "open since before you signed in, or a request from another site). Reload the page "
            "and submit it again.",
            slug="csrf-refused",
        )
