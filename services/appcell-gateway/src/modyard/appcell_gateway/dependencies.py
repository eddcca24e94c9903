"""Dependencies the gateway's endpoints share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Response

from modyard.appcell_gateway import json_body
from modyard.appcell_gateway.context import SLOT, GatewayContext
from modyard.common.auth import CurrentPrincipal, Principal, Role, require_roles

Context = Annotated[GatewayContext, Depends(SLOT.dependency)]

#: The request paths' caller: common auth, whose verified tokens are remembered briefly.
Caller = CurrentPrincipal
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
ServiceOrOperator = Annotated[Principal, Depends(require_roles(Role.service))]


def json_response(answer: dict[str, Any]) -> Response:
    """The pipeline's answer as it is: it was validated against the cell's schemas already, so
    the endpoint's ``response_model`` documents it without validating it a second time."""
    return Response(json_body.dumps(answer), media_type="application/json")
