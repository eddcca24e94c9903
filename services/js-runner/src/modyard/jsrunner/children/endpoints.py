"""``GET /v1/sandbox``: the isolation layers in force and the running children (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from modyard.common.auth import Principal, Role, require_roles
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.jsrunner.context import Context
from modyard.jsrunner.sandbox import rss_bytes

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]


class ChildOut(BaseModel):
    module: str
    pid: int | None
    calls: int
    in_flight: int
    rss_bytes: int | None
    start_ms: float


class SandboxOut(BaseModel):
    namespaces: bool
    #: The mount namespace hiding the host's Unix sockets (/run, /tmp, .run, the home, …).
    mounts: bool
    permissions: bool
    node: str
    missing: list[str]
    children: list[ChildOut]


@router.get("", response_model=SandboxOut)
async def sandbox(context: Context, _: Operator) -> SandboxOut:
    """Which sandbox layers this runner has, and each module version's child."""
    isolation = context.isolation
    return SandboxOut(
        namespaces=isolation.namespaces,
        mounts=isolation.mounts,
        permissions=isolation.permissions,
        node=isolation.node_version,
        missing=isolation.missing,
        children=[
            ChildOut(
                module=child.spec.key,
                pid=child.pid,
                calls=child.calls_started,
                in_flight=child.in_flight,
                rss_bytes=rss_bytes(child.pid) if child.pid else None,
                start_ms=round(child.started_seconds * 1000, 1),
            )
            for child in context.runner.pool.children()
        ],
    )
