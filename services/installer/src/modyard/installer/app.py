from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from modyard.common.app_factory import ServiceSpec, build_service_app
from modyard.common.db.secret_rotation import EncryptedColumn
from modyard.installer.api import routers
from modyard.installer.consumers import subscriptions_for
from modyard.installer.context import SLOT, InstallerContext
from modyard.installer.settings import InstallerSettings
from modyard.installer.token_revocations import DatabaseDenials


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
        routers=routers,
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
