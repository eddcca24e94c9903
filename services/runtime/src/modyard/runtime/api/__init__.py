"""HTTP routers of the runtime service (thin: they call the service layer and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.runtime.api.flows import router as flows_router
from modyard.runtime.api.hooks import router as hooks_router
from modyard.runtime.api.unprocessed import router as unprocessed_router
from modyard.runtime.api.workers import router as workers_router
from modyard.runtime.apps.api import router as apps_router
from modyard.runtime.automations.api import router as automations_router
from modyard.runtime.egress.api import router as egress_router
from modyard.runtime.listeners.api import router as listeners_router
from modyard.runtime.webhooks.api import router as webhooks_router

# Automations first: their endpoints are the hot path, and routes are matched in order.
routers: list[APIRouter] = [
    automations_router,
    apps_router,
    egress_router,
    flows_router,
    hooks_router,
    listeners_router,
    unprocessed_router,
    webhooks_router,
    workers_router,
]
