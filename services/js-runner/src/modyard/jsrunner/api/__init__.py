"""HTTP routers of the JavaScript runner (thin: they read the runner's state)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.jsrunner.api.children import router as children_router

routers: list[APIRouter] = [children_router]
