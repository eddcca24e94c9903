"""Dependencies the gateway's routers share."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from modyard.common.auth import Principal, Role, require_roles
from modyard.common.errors import Unauthorized
from modyard.gateway.context import GatewayContext
from modyard.gateway.tokens import TokenError


async def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


Context = Annotated[GatewayContext, Depends(get_context)]

_bearer = HTTPBearer(auto_error=False, description="A modyard JWT (`modyard token` mints one)")


async def caller(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Like ``modyard.common.auth.authenticate``, with verified tokens remembered briefly
    (see :mod:`modyard.gateway.tokens`): the dependency of the request paths."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'; `modyard token` mints a development token."
        )
    try:
        return context.tokens.principal(credentials.credentials)
    except TokenError as exc:
        raise Unauthorized(f"Send a valid bearer token: {exc}.") from exc


Caller = Annotated[Principal, Depends(caller)]
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
ServiceOrOperator = Annotated[Principal, Depends(require_roles(Role.service))]


def json_response(answer: dict[str, Any]) -> Response:
    """The pipeline's answer as it is: it was validated against the cell's schemas already, so
    the endpoint's ``response_model`` documents it without validating it a second time."""
    return Response(json.dumps(answer, separators=(",", ":")), media_type="application/json")
