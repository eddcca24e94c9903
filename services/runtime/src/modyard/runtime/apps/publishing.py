"""Publishing a workspace as an app: a new immutable ``prismeai`` version in the registry.

The first publish fixes the app's name for ever and a workspace publishes to one app only
(``automation_workspaces.app_name``, unique). Each publish uploads the workspace as Prisme.ai's
single-file source (``index.yml``; JSON is YAML) numbered ``1.0.0``, ``1.1.0``, … (the next minor after the
newest the registry has), so that instances that are not pinned follow every publish. Label, description and photo are carried over; the
config schema and the non-secret config values (the instances' defaults) too — secret values
never leave the workspace. Top-level app instances become ``imports`` (pinned ones with their
``appVersion``).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.auth import Principal, Role
from modyard.common.bus.envelope import new_event
from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict, Forbidden, ServiceUnavailable, ValidationFailed
from modyard.common.semver import InvalidVersion, parse_version
from modyard.contracts.events import payload as event_payload
from modyard.contracts.events.runtime import APP_DELETED, APP_PUBLISHED, AppDeleted, AppPublished
from modyard.runtime.apps import natives
from modyard.runtime.apps.registry_client import RegistryClient
from modyard.runtime.automations import store
from modyard.runtime.automations.models import AppInstance, AutomationWorkspace
from modyard.runtime.automations.secret_config import secret_fields
from modyard.runtime.installer_client import InstallerClient, InstallerUnavailable

#: The index key naming the publishing workspace (read by the installer's publishers.py).
PUBLISHER_KEY = "modyardPublisher"
#: Member roles (in the installer) that may publish a workspace as an app.
PUBLISHER_ROLES = frozenset({"publisher", "owner"})
_MODULE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def app_module_name(app_name: str) -> str:
    """The registry's module name for an app name (as the prismeai format derives it)."""
    return re.sub(r"[^a-z0-9._-]+", "-", app_name.strip().lower()).strip("-.")


async def check_publisher(installer: InstallerClient, principal: Principal, workspace: str) -> None:
    """Publishing puts the workspace in the global registry under the runtime's identity: a
    member needs the ``publisher`` (or ``owner``) role in it; operators and services may."""
    if principal.has_role(Role.operator, Role.service):
        return
    try:
        role = await installer.member_role(workspace, principal.subject)
    except InstallerUnavailable as exc:
        raise ServiceUnavailable(f"Cannot check your role in {workspace!r}: {exc}.") from exc
    if role not in PUBLISHER_ROLES:
        held = f"your role there is {role!r}" if role else "you are not a member"
        raise Forbidden(
            f"Publishing workspace {workspace!r} as an app needs the 'publisher' role in it "
            f"({held}); an operator grants it on the installer: PUT /v1/workspaces/{workspace}"
            f'/members/{principal.subject} {{"role": "publisher"}}.',
            slug="publisher-role-required",
        )


@dataclass
class Published:
    workspace: str
    app: str
    version: str
    created: bool
    notified_instances: int


def _next_version(versions: list[str]) -> str:
    """The minor after the newest: every publish stays compatible (``^1.0.0``), so that
    installations that are not pinned follow it, as Prisme.ai's instances do by default."""
    parsed = []
    for version in versions:
        try:
            parsed.append(parse_version(version))
        except InvalidVersion:
            continue
    if not parsed:
        return "1.0.0"
    newest = max(parsed)
    return f"{newest.major}.{newest.minor + 1}.0"


def workspace_document(
    row: AutomationWorkspace,
    app: str,
    version: str,
    automations: dict[str, Any],
    imports: dict[str, Any],
) -> dict[str, Any]:
    secrets = secret_fields(row.config_schema)
    document: dict[str, Any] = {
        "name": row.label or app,
        "slug": app,
        "version": version,
        "automations": automations,
        # Who published it: the installer lets other workspaces follow it only if allowed.
        PUBLISHER_KEY: row.workspace,
    }
    if row.description:
        document["description"] = row.description
    if row.photo:
        document["photo"] = row.photo
    if row.config_schema or row.config_value:
        document["config"] = {
            "schema": row.config_schema,
            "value": {k: v for k, v in row.config_value.items() if k not in secrets},
        }
    if imports:
        document["imports"] = imports
    return document


def archive(document: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("index.yml", json.dumps(document, indent=2, ensure_ascii=False))
    return buffer.getvalue()


async def publish(
    session: AsyncSession,
    registry: RegistryClient,
    workspace: str,
    app_name: str,
    *,
    source: str,
) -> Published:
    name = app_module_name(app_name)
    if not _MODULE_NAME.match(name):
        raise ValidationFailed(
            f"{app_name!r} gives no usable app name; use letters, digits, '-', '_' or '.'.",
            slug="app-name-invalid",
        )
    row = await store.workspace_settings(session, workspace)
    if row.app_name is not None and row.app_name != name:
        raise Conflict(
            f"Workspace {workspace!r} is published as app {row.app_name!r}; an app's name is "
            f"fixed by its first publish. Publish again as {row.app_name!r}.",
            slug="app-name-fixed",
            app=row.app_name,
        )
    owner = await session.scalar(
        select(AutomationWorkspace.workspace).where(
            AutomationWorkspace.app_name == name, AutomationWorkspace.workspace != workspace
        )
    )
    versions = await registry.versions(name)
    if owner is not None or (row.app_name is None and versions):
        raise Conflict(
            f"App name {name!r} is taken by another workspace or module; choose another name.",
            slug="app-name-taken",
        )
    version = _next_version(versions)
    automations = {
        item.slug: item.definition for item in await store.list_automations(session, workspace)
    }
    instances = await session.scalars(
        select(AppInstance).where(AppInstance.workspace == workspace).order_by(AppInstance.slug)
    )
    imports = {
        item.slug: {"appSlug": item.module, **({"appVersion": item.version} if item.pinned else {})}
        for item in instances
        if "." not in item.slug
    }
    document = workspace_document(row, name, version, automations, imports)
    result = await registry.publish(archive(document))
    row.app_name = name
    row.published_version = str(result.get("version", version))
    await session.flush()
    await record_event(
        session,
        new_event(
            source=source,
            type=APP_PUBLISHED,
            subject=name,
            data=event_payload(
                AppPublished(workspace=workspace, app=name, version=row.published_version)
            ),
        ),
    )
    notified = await _notify_instances(
        session, source, workspace, name, natives.PUBLISHED, {"appVersion": row.published_version}
    )
    return Published(
        workspace, name, row.published_version, bool(result.get("created", True)), notified
    )


async def _notify_instances(
    session: AsyncSession,
    source: str,
    workspace: str,
    app: str,
    native: str,
    payload: dict[str, Any],
) -> int:
    """Seed 002: "current OR parent workspace is published/unpublished": the instances of the
    app in every workspace, and the instances inside the workspace itself."""
    targets = await session.scalars(select(AppInstance).where(AppInstance.module == app))
    inside = await session.scalars(select(AppInstance).where(AppInstance.workspace == workspace))
    seen: set[tuple[str, str]] = set()
    for item in [*targets, *inside]:
        if (item.workspace, item.slug) in seen:
            continue
        seen.add((item.workspace, item.slug))
        await natives.notify_instance(
            session, source, item.workspace, item.slug, native, {"app": app, **payload}
        )
    return len(seen)


async def unpublish(session: AsyncSession, workspace: str, *, source: str) -> int:
    """Withdraw the workspace's app: instances hear ``apps.deleted``; how many were told.

    The registry keeps the versions (immutable; an operator may yank them); the app's name stays
    the workspace's, and publishing again brings the app back under it.
    """
    row = await store.workspace_settings(session, workspace)
    if row.app_name is None or row.published_version is None:
        raise Conflict(
            f"Workspace {workspace!r} is not published; there is nothing to unpublish.",
            slug="app-not-published",
        )
    row.published_version = None
    await record_event(
        session,
        new_event(
            source=source,
            type=APP_DELETED,
            subject=row.app_name,
            data=event_payload(AppDeleted(workspace=workspace, app=row.app_name)),
        ),
    )
    return await _notify_instances(session, source, workspace, row.app_name, natives.DELETED, {})


async def published_apps(session: AsyncSession) -> list[AutomationWorkspace]:
    rows = await session.scalars(
        select(AutomationWorkspace)
        .where(AutomationWorkspace.published_version.is_not(None))
        .order_by(AutomationWorkspace.app_name)
    )
    return list(rows)
