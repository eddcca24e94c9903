"""HTTP routers of the JavaScript runner (thin: they read the runner's state)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.jsrunner.api.auth_calls import router as auth_calls_router
from modyard.jsrunner.api.children import router as children_router
from modyard.jsrunner.api.debug import router as debug_router

routers: list[APIRouter] = [children_router, debug_router, auth_calls_router]
