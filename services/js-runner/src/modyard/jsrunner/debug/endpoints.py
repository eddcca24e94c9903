"""Debugging a component (operators): ``POST /v1/run`` calls one component once, outside any
flow, and ``GET /v1/logs`` reads what components printed (``modyard js run`` / ``js logs``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from modyard.common.auth import Principal, Role, require_roles
from modyard.common.errors import PROBLEM_RESPONSES, NotFound
from modyard.jsrunner.context import Context
from modyard.jsrunner.logbook import LOGBOOK
from modyard.jsrunner.modules import ModuleUnavailable

router = APIRouter(prefix="/v1", tags=["debug"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]


class RunIn(BaseModel):
    module: str = Field(min_length=1, max_length=128, examples=["acme.crm"])
    version: str = Field(min_length=1, max_length=128, examples=["1.0.0"])
    #: The component's full name, or its last part(s): ``Enrich``, ``contacts.Enrich``.
    component: str = Field(min_length=1, max_length=255, examples=["contacts.Enrich"])
    message: Any = None
    port: str = Field(default="in", max_length=64)
    properties: dict[str, Any] = Field(default_factory=dict)
    #: What the component gets as ``context.auth`` (an installation's configuration).
    config: dict[str, Any] = Field(default_factory=dict)
    #: Whose data the call reads and writes (state, store, files): a scratch workspace.
    workspace: str = Field(default="modyard-js-run", max_length=64)


class RunOut(BaseModel):
    #: The runner's answer as the runtime would get it: ``outputs`` or ``error``.
    reply: dict[str, Any]
    logs: list[dict[str, Any]]


@router.post("/run", response_model=RunOut)
async def run(body: RunIn, context: Context, _: Operator) -> RunOut:
    """Call one component once with ``message`` on ``port`` and return its outputs and logs."""
    runner = context.runner
    try:
        module = await runner.store.get(body.module, body.version)
    except ModuleUnavailable as exc:
        raise NotFound(f"{exc.message} (check the module name and version)") from None
    names = [
        name
        for name in module.components
        if name == body.component or name.endswith("." + body.component)
    ]
    if len(names) != 1:
        known = ", ".join(sorted(module.components)) or "none"
        raise NotFound(
            f"{body.module} {body.version} has "
            f"{'several' if names else 'no'} JavaScript component(s) named {body.component!r}; "
            f"its components: {known}"
        )
    mark = LOGBOOK.latest()  # this call's lines are the module's lines after it
    reply = await runner.handle(
        {
            "module": body.module,
            "version": body.version,
            "component": names[0],
            "port": body.port,
            "payload": body.message,
            "properties": body.properties,
            "config": body.config,
            "workspace": body.workspace,
            "flow_id": "modyard-js-run",
            "node_id": "run",
        }
    )
    return RunOut(reply=reply, logs=LOGBOOK.read(after=mark, module=module.key))


@router.get("/logs")
async def logs(
    _: Operator,
    module: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    """What components printed (``console.*``, ``context.log``) and why sandboxes stopped,
    oldest first; ``after`` = the last ``seq`` seen, to follow."""
    items = LOGBOOK.read(after=after, module=module, limit=limit)
    return {"items": items, "last": items[-1]["seq"] if items else after}
