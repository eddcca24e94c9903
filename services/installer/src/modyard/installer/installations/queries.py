"""Reading a workspace's installations, and how the API shows one (secrets masked)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.errors import NotFound
from modyard.installer.configuration.secrets import (
    MASK,
    mask,
    merge_secrets,
    secret_paths,
)
from modyard.installer.context import InstallerContext
from modyard.installer.models import Installation, InstallationDependency, Workspace
from modyard.installer.schemas import InstallationOut
from modyard.modules.manifest import ConfigSpec


async def get_installation(session: AsyncSession, workspace: Workspace, slug: str) -> Installation:
    found = await session.scalar(
        select(Installation).where(
            Installation.workspace_id == workspace.id, Installation.slug == slug
        )
    )
    if found is None:
        raise NotFound(
            f"Workspace {workspace.slug!r} has no installation {slug!r}; "
            f"GET /v1/workspaces/{workspace.slug}/installations lists them."
        )
    return found


async def list_installations(session: AsyncSession, workspace: Workspace) -> list[Installation]:
    return list(
        (
            await session.scalars(
                select(Installation)
                .where(Installation.workspace_id == workspace.id)
                .order_by(Installation.slug)
            )
        ).all()
    )


async def describe(
    session: AsyncSession, workspace: Workspace, installation: Installation
) -> InstallationOut:
    slugs = {
        row.id: row.slug
        for row in (
            await session.execute(
                select(Installation.id, Installation.slug).where(
                    Installation.workspace_id == workspace.id
                )
            )
        ).all()
    }
    edges = (
        await session.scalars(
            select(InstallationDependency).where(
                or_(
                    InstallationDependency.installation_id == installation.id,
                    InstallationDependency.depends_on_id == installation.id,
                )
            )
        )
    ).all()
    spec = _config_spec(installation.manifest)
    return InstallationOut(
        id=installation.id,
        workspace=workspace.slug,
        slug=installation.slug,
        module=installation.module,
        version=installation.version,
        format=installation.format,
        kind=installation.kind,
        pinned=installation.pinned,
        parent=slugs.get(installation.parent_id) if installation.parent_id else None,
        installed_as_dependency=installation.installed_as_dependency,
        config=mask(
            {**installation.config, **_secret_placeholders(installation, spec)}, secret_paths(spec)
        ),
        lock=installation.lock,
        # The edges are read after the slugs: one to an installation another transaction
        # created in between is not named yet (the next read names it), never a 500.
        dependencies=sorted(
            slugs[e.depends_on_id]
            for e in edges
            if e.installation_id == installation.id and e.depends_on_id in slugs
        ),
        dependents=sorted(
            slugs[e.installation_id]
            for e in edges
            if e.depends_on_id == installation.id and e.installation_id in slugs
        ),
        created_at=installation.created_at,
        updated_at=installation.updated_at,
    )


def _config_spec(manifest: Mapping[str, Any]) -> ConfigSpec:
    return ConfigSpec.model_validate(manifest.get("config") or {})


def _secret_placeholders(installation: Installation, spec: ConfigSpec) -> dict[str, Any]:
    """Stand-ins for the stored secrets, so a read shows which secrets are set (masked)."""
    if not installation.secrets:
        return {}
    placeholders: dict[str, Any] = {}
    for path in secret_paths(spec):
        target = placeholders
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = MASK
    return placeholders


def full_config(context: InstallerContext, installation: Installation) -> dict[str, Any]:
    """Plain and secret values together (decrypted): for validation and the runtime only."""
    secret_values = (
        context.secrets.decrypt_json(installation.secrets) if installation.secrets else {}
    )
    return merge_secrets(installation.config, secret_values)
