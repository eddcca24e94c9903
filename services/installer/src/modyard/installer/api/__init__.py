"""HTTP routers of the installer service (thin: they call the service layer and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.installer.accounts.endpoints import auth_services_router
from modyard.installer.accounts.endpoints import router as accounts_router
from modyard.installer.api.acl import router as acl_router
from modyard.installer.api.storage import router as storage_router
from modyard.installer.api.tokens import router as tokens_router
from modyard.installer.api.workspaces import router as workspaces_router
from modyard.installer.installations.endpoints import router as installations_router

routers: list[APIRouter] = [
    workspaces_router,
    installations_router,
    acl_router,
    storage_router,
    tokens_router,
    accounts_router,
    auth_services_router,
]
