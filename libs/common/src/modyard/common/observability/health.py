"""Liveness and readiness.

``/healthz`` answers as long as the process runs (Kubernetes restarts it otherwise), and it never
looks at dependencies: a database outage must not make every pod restart. ``/readyz`` says whether
this process can do its work now (database reachable and migrated, broker connected); while it is
503 Kubernetes stops sending traffic, and the service keeps retrying its dependencies by itself.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from modyard.common.api_schemas import Health
from modyard.common.errors import ProblemDetail, problem_response, problem_type
from modyard.common.observability.metrics import DEPENDENCY_UP

CheckState = Literal["up", "down", "pending"]


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    service: str
    checks: dict[str, CheckState]


router = APIRouter(tags=["observability"])


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> Health:
    return Health(service=request.app.state.settings.service_name, version=request.app.version)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": ProblemDetail, "content": {"application/problem+json": {}}}},
)
async def readyz(request: Request) -> Any:
    state = request.app.state
    service = state.settings.service_name
    database_up = await state.database.ping()
    checks: dict[str, CheckState] = {
        "database": "up" if database_up else "down",
        "migrations": "up" if state.lifecycle.migrated.is_set() else "pending",
        "broker": "up" if state.bus.is_ready else "down",
    }
    DEPENDENCY_UP.labels(service, "database").set(1 if database_up else 0)
    DEPENDENCY_UP.labels(service, "broker").set(1 if checks["broker"] == "up" else 0)
    if all(value == "up" for value in checks.values()):
        return JSONResponse(Readiness(service=service, checks=checks).model_dump())
    failing = ", ".join(f"{name} is {value}" for name, value in checks.items() if value != "up")
    problem = ProblemDetail(
        type=problem_type("not-ready"),
        title="Service not ready",
        status=503,
        detail=f"{service} is not ready: {failing}. It retries on its own; see its logs.",
        instance="/readyz",
        checks=checks,
    )
    return problem_response(problem, {"Retry-After": "5"})
