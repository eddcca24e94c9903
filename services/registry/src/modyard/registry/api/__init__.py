"""HTTP routers of the registry service (thin: they call the service layer and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.registry.api.modules import router as modules_router
from modyard.registry.api.schemas import router as schemas_router

routers: list[APIRouter] = [modules_router, schemas_router]
