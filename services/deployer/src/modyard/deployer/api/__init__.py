"""HTTP routers of the deployer service (thin: they call the service layer and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

routers: list[APIRouter] = []
