"""HTTP routers of the appcell-gateway service (thin: they call the service layer and nothing else)."""

from __future__ import annotations

from fastapi import APIRouter

from modyard.appcell_gateway.api import cells, requests, ui

routers: list[APIRouter] = [cells.router, requests.router, ui.router]
