"""Verified bearer tokens, remembered briefly, for endpoints (the hot path of automations).

Verifying a JWT costs more than running a short automation. A token is remembered at most
``REMEMBER_SECONDS`` after it was verified, within the 30 s of leeway ``decode_token`` already
grants on expiry (the gateway does the same; services share no code but ``libs``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modyard.common.auth import Principal, TokenError, decode_token
from modyard.common.errors import Unauthorized
from modyard.common.settings import CommonSettings

REMEMBER_SECONDS = 30.0
MAX_REMEMBERED = 10_000

_known: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
_bearer = HTTPBearer(auto_error=False, description="A modyard JWT (`modyard token` mints one)")


def principal_of(settings: CommonSettings, token: str) -> Principal:
    now = time.monotonic()
    known = _known.get(token)
    if known is not None and known[0] > now:
        return known[1]
    principal = decode_token(settings, token)
    _known[token] = (now + REMEMBER_SECONDS, principal)
    _known.move_to_end(token)
    while len(_known) > MAX_REMEMBERED:
        _known.popitem(last=False)
    return principal


async def remembered_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Like ``modyard.common.auth.authenticate``, with verified tokens remembered."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'; `modyard token` mints a development token."
        )
    settings: CommonSettings = request.app.state.settings
    try:
        return principal_of(settings, credentials.credentials)
    except TokenError as exc:
        raise Unauthorized(f"Send a valid bearer token: {exc}.") from exc


EndpointPrincipal = Annotated[Principal, Depends(remembered_principal)]
