from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.common.db.secret_rotation import EncryptedColumn
from modyard.installer.accounts.endpoints import auth_services_router
from modyard.installer.accounts.endpoints import router as accounts_router
from modyard.installer.acl.endpoints import router as acl_router
from modyard.installer.consumers import subscriptions_for
from modyard.installer.context import SLOT, InstallerContext
from modyard.installer.installations.endpoints import router as installations_router
from modyard.installer.settings import InstallerSettings
from modyard.installer.storage.endpoints import router as storage_router
from modyard.installer.tokens.endpoints import router as tokens_router
from modyard.installer.tokens.revocations import DatabaseDenials
from modyard.installer.workspaces.endpoints import router as workspaces_router


def service_spec(settings: InstallerSettings | None = None) -> ServiceSpec:
    settings = settings or InstallerSettings()
    context = InstallerContext.from_settings(settings)

    @asynccontextmanager
    async def resources(app: FastAPI) -> AsyncIterator[None]:
        SLOT.attach(app, context)
        # The installer owns the denials: it reads them from its tables, not from its own API.
        app.state.token_denials_source = DatabaseDenials(app.state.database)
        try:
            yield
        finally:
            await context.registry.close()
            await context.jsrunner.close()

    return ServiceSpec(
        settings=settings,
        title="modyard installer",
        description="workspaces, installations, resolved dependency locks, configs, secrets and ACL rules",
        migrations=Path(__file__).parent / "migrations",
        routers=[
            workspaces_router,
            installations_router,
            acl_router,
            storage_router,
            tokens_router,
            accounts_router,
            auth_services_router,
        ],
        subscriptions=subscriptions_for(context),
        resources=resources,
        encrypted_columns=(
            EncryptedColumn("installations", "secrets"),
            EncryptedColumn("installations", "storage_token"),
            EncryptedColumn("storage_items", "encrypted_value"),
            EncryptedColumn("accounts", "secrets"),
            EncryptedColumn("auth_service_clients", "client_secret"),
            EncryptedColumn("oauth_connects", "code_verifier"),
        ),
    )


def create_app(settings: InstallerSettings | None = None) -> FastAPI:
    return build_service_app(service_spec(settings))
