"""The backoffice: the operators' web console.

Unlike the other services it owns no tables and no queue (so no ``build_service_app``, which is
built around them): every screen is rendered from the other services' HTTP APIs, called with the
signed-in operator's token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import structlog
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from modyard.backoffice.context import SLOT, BackofficeContext
from modyard.backoffice.csrf import require_csrf
from modyard.backoffice.rendering import install_page_handlers
from modyard.backoffice.routes import (
    accounts,
    deployments,
    flows,
    health,
    modules,
    session,
    unprocessed,
    upload,
    webhooks,
)
from modyard.backoffice.security_headers import SecurityHeadersMiddleware
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.auth import follow_token_denials, verified_tokens
from modyard.common.body_limit import install_body_limit
from modyard.common.errors import install_problem_handlers
from modyard.common.logging import configure_logging
from modyard.common.observability import metrics
from modyard.common.observability.middleware import RequestContextMiddleware
from modyard.common.process_heap import settle_after_startup
from modyard.common.tls import client_tls_context
from modyard.common.version import VERSION

log = structlog.get_logger(__name__)


def create_app(settings: BackofficeSettings | None = None) -> FastAPI:
    settings = settings or BackofficeSettings()
    configure_logging(
        service=settings.service_name, level=settings.log_level, json=settings.log_json
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One connection pool for every operator's calls (see console.SharedTransport).
        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=100), verify=client_tls_context()
        )
        context.transport = transport
        # Revoked tokens and workspace removals, as every service follows them.
        denials = asyncio.create_task(follow_token_denials(app), name="token-denials")
        log.info("service_starting", port=settings.port)
        # Ready (nothing to connect): start-up's objects frozen, what it freed given back.
        settle_after_startup()
        try:
            yield
        finally:
            denials.cancel()
            await asyncio.gather(denials, return_exceptions=True)
            await transport.aclose()
            log.info("service_stopped")

    app = FastAPI(
        title="modyard backoffice",
        description="the operators' web console",
        version=VERSION,
        lifespan=lifespan,
        openapi_url="/v1/openapi.json",
        # Every unsafe request proves it comes from a console page (csrf.py).
        dependencies=[Depends(require_csrf)],
    )
    # Common plumbing (health, token denials) reads app.state.settings; the pages read the context.
    app.state.settings = settings
    context = BackofficeContext(settings=settings, tokens=verified_tokens(app))
    SLOT.attach(app, context)
    install_problem_handlers(app, database=False)
    install_page_handlers(app)
    # Bodies are capped per route before anything reads them (the upload declares its own).
    install_body_limit(app, settings.service_name)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    app.add_middleware(SecurityHeadersMiddleware, secure_cookies=settings.secure_cookies)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(health.router)
    app.include_router(metrics.router)
    for router in (session, modules, upload, unprocessed, deployments, flows, webhooks, accounts):
        app.include_router(router.router, include_in_schema=False)
    return app
