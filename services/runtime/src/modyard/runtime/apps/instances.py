"""App instances, kept from the installer's ``installation.*`` events.

An installation of a ``prismeai`` module is an app instance: its slug is the installation's
(``nlu``, and ``nlu.french`` for the instance the ``nlu`` app imports as ``french``; the installer
names imported instances so). The runtime keeps the app version's automations and config from the
registry and the instance's effective config from the installer (instance > environment
``APP_CONFIG_…`` > the app's own config, layered by the installer), secrets encrypted, and sends
the instance its native events. Import slugs keep Prisme.ai's capitals and spaces
(``prompt-store.Custom Code``); one app imported twice is two instances. A 4xx from the installer
for an instance's configuration is final: the event is dead-lettered at once (``EventRefused``),
not redelivered up to the queue's delivery limit.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.consumer import EventRefused
from modyard.common.bus.envelope import CloudEvent
from modyard.common.errors import ServiceUnavailable
from modyard.common.secrets import SecretBox
from modyard.contracts.events import parse
from modyard.contracts.events.installer import (
    INSTALLATION_CONFIGURED,
    INSTALLATION_CREATED,
    INSTALLATION_REMOVED,
    InstallationEvent,
)
from modyard.runtime import changes
from modyard.runtime.apps import natives
from modyard.runtime.apps.registry_client import RegistryClient
from modyard.runtime.automations.models import AppInstance
from modyard.runtime.automations.programs import app_secret_fields
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.installer_client import InstallerClient
from modyard.runtime.replica_news import ReplicaNews

log = structlog.get_logger(__name__)

PRISMEAI = "prismeai"


class InstanceTracker:
    def __init__(
        self,
        service: AutomationService,
        registry: RegistryClient,
        installer: InstallerClient,
        box: SecretBox,
        news: ReplicaNews | None = None,
    ) -> None:
        self.service = service
        self.registry = registry
        self.installer = installer
        self.box = box
        self.news = news

    async def _changed(self, session: AsyncSession, workspace: str) -> None:
        """Every runtime process rebuilds the workspace's program once the instance's row
        commits (a drop on the installer's event itself could come before that commit)."""
        await changes.automations_changed(session, workspace, self.news)

    async def _effective_config(self, workspace: str, slug: str) -> dict[str, Any]:
        # Not the installer client's cached read: a ``configured`` event must see the new values.
        path = f"/v1/workspaces/{workspace}/installations/{slug}/effective-config"
        try:
            response = await self.installer._http.get(path, headers=self.installer._headers())
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("the installer cannot be reached") from exc
        if response.status_code == 404:
            return {}
        if response.is_client_error:
            # A refusal is final: redelivering the event would meet it again (the bus's delivery
            # limit would only delay the dead letter), so it is dead-lettered now, with why.
            try:
                body = response.json()
            except ValueError:
                body = None
            detail = str(body.get("detail")) if isinstance(body, dict) else response.text[:300]
            log.error(
                "app_instance.config_refused",
                workspace=workspace,
                slug=slug,
                status=response.status_code,
                detail=detail,
            )
            raise EventRefused(
                f"the installer answered {response.status_code} for the effective configuration "
                f"of {slug!r} in {workspace!r}: {detail}"
            )
        response.raise_for_status()
        return dict(response.json()["config"])

    async def on_installation(self, session: AsyncSession, event: CloudEvent) -> None:
        data = parse(InstallationEvent, event.data)
        if data is None or data.format != PRISMEAI:
            return
        workspace, slug, version = data.workspace, data.slug, data.version
        payload = {"app": data.module, "appVersion": version}
        if event.type == INSTALLATION_REMOVED:
            await self._removed(session, workspace, slug, payload)
            return
        manifest = await self.registry.manifest(data.module, version)
        if manifest is None:
            log.warning("app_instance.version_missing", module=data.module, version=version)
            return
        config = await self._effective_config(workspace, slug)
        secret_names = app_secret_fields(manifest)
        secrets = {k: v for k, v in config.items() if k in secret_names}
        plain = {k: v for k, v in config.items() if k not in secret_names}
        values = {
            "installation_id": data.installation_id,
            "module": data.module,
            "version": version,
            "pinned": data.pinned,
            "manifest": {
                key: manifest.get(key)
                # ``imports``: what each nested instance's config is written as (programs.py).
                for key in ("name", "version", "label", "automations", "config", "extra", "imports")
            },
            "config": plain,
            "secrets": self.box.encrypt_json(secrets) if secrets else None,
        }
        await session.execute(
            pg_insert(AppInstance)
            .values(workspace=workspace, slug=slug, **values)
            .on_conflict_do_update(index_elements=["workspace", "slug"], set_=values)
        )
        await self._changed(session, workspace)
        native = {
            INSTALLATION_CREATED: natives.INSTALLED,
            INSTALLATION_CONFIGURED: natives.CONFIGURED,
        }.get(event.type)
        if native is not None:
            await natives.notify_instance(
                session, self.service.source, workspace, slug, native, payload
            )

    async def _removed(
        self, session: AsyncSession, workspace: str, slug: str, payload: dict[str, Any]
    ) -> None:
        root = await self.service.programs.get(workspace, session)
        name = f"{slug}.{natives.UNINSTALLED}"
        # The instance hears it while it still exists; the event then goes to the workspace's
        # feed for its parents (the instance is gone by the time the consumer sees it, so it
        # does not hear it twice).
        await self.service.deliver(
            session, workspace, name, {"appInstance": slug, **payload}, root=root
        )
        await session.execute(
            delete(AppInstance).where(
                AppInstance.workspace == workspace,
                (AppInstance.slug == slug) | AppInstance.slug.startswith(f"{slug}."),
            )
        )
        await self._changed(session, workspace)
        await natives.notify_instance(
            session, self.service.source, workspace, slug, natives.UNINSTALLED, payload
        )
