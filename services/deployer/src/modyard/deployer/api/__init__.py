"""HTTP routers of the deployer service (thin: they call the service layer and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.deployer.api.deployments import router as deployments_router

routers: list[APIRouter] = [deployments_router]
