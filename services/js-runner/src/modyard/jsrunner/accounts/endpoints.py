"""``POST /v1/auth-calls``: run a module's auth.js for the installer's accounts (services only:
the body carries credentials)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from modyard.common.auth import Principal, Role, require_roles
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.jsrunner.accounts import auth_calls
from modyard.jsrunner.context import Context

router = APIRouter(prefix="/v1/auth-calls", tags=["accounts"], responses=PROBLEM_RESPONSES)
Service = Annotated[Principal, Depends(require_roles(Role.service))]


@router.post("", response_model=auth_calls.AuthAnswer)
async def auth_call(
    body: auth_calls.AuthCall, context: Context, _: Service
) -> auth_calls.AuthAnswer:
    """Describe an auth.js, validate credentials with it, or call one of its functions."""
    return await auth_calls.run(context.runner, body)
