"""Which installation of a workspace provides an auth service, and asking its auth.js.

The registry's Appmixer adapter records each auth.js in the manifest's ``extra.auth`` as
``{path, service, type, components}``; the installer keeps the manifest with the installation,
so finding a provider is a read of the workspace's installations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.errors import InvalidParam, ValidationFailed
from modyard.installer.context import InstallerContext
from modyard.installer.models import Installation, Workspace


@dataclass(frozen=True)
class Provider:
    service: str
    type: str | None
    installation: str
    module: str
    version: str
    path: str


def _auth_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    extra = manifest.get("extra") or {}
    entries = extra.get("auth") if isinstance(extra, dict) else None
    return [entry for entry in entries or [] if isinstance(entry, dict) and entry.get("service")]


async def list_providers(session: AsyncSession, workspace: Workspace) -> list[Provider]:
    installations = (
        await session.scalars(
            select(Installation)
            .where(Installation.workspace_id == workspace.id)
            .order_by(Installation.slug)
        )
    ).all()
    found: dict[str, Provider] = {}
    for installation in installations:
        for entry in _auth_entries(installation.manifest):
            found.setdefault(
                str(entry["service"]),
                Provider(
                    service=str(entry["service"]),
                    type=entry.get("type"),
                    installation=installation.slug,
                    module=installation.module,
                    version=installation.version,
                    path=str(entry.get("path") or "auth.js"),
                ),
            )
    return list(found.values())


async def find_provider(session: AsyncSession, workspace: Workspace, service: str) -> Provider:
    providers = await list_providers(session, workspace)
    for provider in providers:
        if provider.service == service:
            return provider
    known = ", ".join(p.service for p in providers) or "none: install a module with an auth.js"
    raise ValidationFailed(
        f"No installation of workspace {workspace.slug!r} provides the auth service {service!r}; "
        f"its auth services: {known}.",
        slug="unknown-auth-service",
        errors=[InvalidParam(pointer="/body/service", detail=f"one of: {known}")],
    )


async def ask(
    context: InstallerContext,
    workspace: Workspace,
    provider: Provider,
    method: str,
    values: dict[str, Any] | None = None,
    *,
    member: str | None = None,
    init_data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The runner's answer to one auth.js call (``{ok, result, message, status}``)."""
    return await context.jsrunner.auth_call(
        {
            "module": provider.module,
            "version": provider.version,
            "path": provider.path,
            "method": method,
            "member": member,
            "context": values or {},
            "init_data": init_data or {},
            "workspace": workspace.slug,
        }
    )


async def form(
    context: InstallerContext, workspace: Workspace, provider: Provider
) -> dict[str, Any]:
    """auth.js's description (type, fields, OAuth endpoints given as values)."""
    answer = await ask(context, workspace, provider, "describe")
    if not answer.get("ok"):
        raise ValidationFailed(
            f"The auth.js of {provider.module} {provider.version} cannot be read: "
            f"{answer.get('message')}; its publisher must fix it.",
            slug="broken-auth-module",
        )
    result: dict[str, Any] = answer.get("result") or {}
    return result
