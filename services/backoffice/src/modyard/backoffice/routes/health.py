"""``/healthz`` and ``/readyz``: with no database or broker of its own, the backoffice is ready as
soon as it serves; a service it calls being down shows on the page that needs it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from modyard.common.api_schemas import Health

router = APIRouter(tags=["observability"])


class Ready(BaseModel):
    status: str = "ready"
    service: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> Health:
    return Health(service=request.app.state.settings.service_name, version=request.app.version)


@router.get("/readyz", response_model=Ready)
async def readyz(request: Request) -> Ready:
    return Ready(service=request.app.state.settings.service_name, checks={})
