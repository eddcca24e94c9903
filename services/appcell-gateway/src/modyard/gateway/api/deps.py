"""Dependencies the gateway's routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from modyard.common.auth import Principal, Role, require_roles
from modyard.gateway.context import GatewayContext


async def get_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


Context = Annotated[GatewayContext, Depends(get_context)]
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
ServiceOrOperator = Annotated[Principal, Depends(require_roles(Role.service))]
