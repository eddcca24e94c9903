"""Upgrading an installation, by hand or by following a compatible new version."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict, ValidationFailed
from modyard.common.semver import parse_version, satisfies
from modyard.installer import publishers
from modyard.installer.context import InstallerContext
from modyard.installer.events import (
    INSTALLATION_UPGRADED,
    MAJOR_UPGRADE_REASON,
    components_of,
    installation_event,
)
from modyard.installer.installations.queries import full_config, list_installations
from modyard.installer.installations.steps import (
    add_dependency,
    announce_created,
    fetch_manifests,
    free_slug,
    lock_workspace,
    record_edges,
    resolve,
    store_config,
    validated_config,
)
from modyard.installer.models import Installation, InstallationDependency, Workspace

log = structlog.get_logger(__name__)


async def upgrade(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    installation: Installation,
    *,
    version: str | None,
    accept_breaking: bool,
    automatic: bool = False,
) -> bool:
    """Move ``installation`` to the newest version matching ``version``; False if already there."""
    await lock_workspace(session, workspace)
    others = [
        item for item in await list_installations(session, workspace) if item.id != installation.id
    ]
    installed = {item.module: item.version for item in others if item.module != installation.module}
    result = await resolve(
        context, installation.module, version, installed, root_field="/body/version"
    )
    target = result.root
    if target.version == installation.version:
        return False
    previous = installation.version
    if parse_version(target.version) < parse_version(previous) and automatic:
        return False
    await _check_dependents(session, installation, target.version)
    breaking = parse_version(target.version).major != parse_version(previous).major
    affected = components_of(installation.manifest)
    if breaking and not accept_breaking:
        raise Conflict(
            f"{installation.module} {target.version} is a new major version (installed: {previous}); "
            'flows using it will be stopped. Send "accept_breaking": true to upgrade.',
            slug="breaking-upgrade",
            affected_components=[component["name"] for component in affected],
        )
    manifests = await fetch_manifests(
        context,
        [m for m in result.modules.values() if m.name == target.name or m.name not in installed],
    )
    manifest = manifests[target.name]
    plain, secret_values = validated_config(
        manifest,
        full_config(context, installation),
        pointer="/config",
        slug=installation.slug,
        context=context,
    )

    by_module = {item.module: item for item in others}
    created: list[Installation] = []
    for name in result.modules:
        if name == target.name or name in by_module:
            continue
        dependency = add_dependency(
            session,
            context,
            workspace,
            result,
            name,
            manifests[name],
            slug=await free_slug(session, workspace, name),
            parent=installation,
            config={},
            actor="installer",
        )
        by_module[name] = dependency
        created.append(dependency)

    installation.version = manifest.version
    installation.digest = target.digest
    installation.manifest = manifest.model_dump(mode="json", by_alias=True)
    installation.lock = result.to_lock()
    store_config(context, installation, plain, secret_values)
    await session.flush()
    await session.execute(
        delete(InstallationDependency).where(
            InstallationDependency.installation_id == installation.id
        )
    )
    await record_edges(session, result, by_module, installation)
    await announce_created(session, context, workspace, created)
    extra: dict[str, Any] = {
        "previous_version": previous,
        "breaking": breaking,
        "automatic": automatic,
    }
    if breaking:
        extra |= {"reason": MAJOR_UPGRADE_REASON, "affected_components": affected}
    await record_event(
        session,
        installation_event(
            INSTALLATION_UPGRADED, context.settings.source, workspace.slug, installation, **extra
        ),
    )
    log.info(
        "installation_upgraded",
        workspace=workspace.slug,
        slug=installation.slug,
        previous=previous,
        version=installation.version,
        automatic=automatic,
    )
    return True


async def _check_dependents(
    session: AsyncSession, installation: Installation, version: str
) -> None:
    rows = (
        await session.execute(
            select(
                Installation.slug,
                Installation.module,
                Installation.version,
                InstallationDependency.range,
            )
            .join(InstallationDependency, InstallationDependency.installation_id == Installation.id)
            .where(InstallationDependency.depends_on_id == installation.id)
        )
    ).all()
    clashes = [
        f"{slug} ({module}@{dep_version}) needs {installation.module}@{range_}"
        for slug, module, dep_version, range_ in rows
        if not satisfies(version, range_)
    ]
    if clashes:
        raise Conflict(
            f"{installation.module} {version} would break what depends on it: {'; '.join(clashes)}. "
            "Upgrade those first, or choose a version they accept.",
            slug="version-conflict",
            chain=clashes,
        )


async def follow_new_version(
    session: AsyncSession, context: InstallerContext, module: str, version: str
) -> list[str]:
    """Move unpinned installations of ``module`` to ``version`` when it is compatible (``^``)."""
    candidates = (
        await session.execute(
            select(Installation, Workspace)
            .join(Workspace, Workspace.id == Installation.workspace_id)
            .where(Installation.module == module, Installation.pinned.is_(False))
        )
    ).all()
    moved = []
    new = parse_version(version)
    manifest = await context.registry.manifest(module, version) if candidates else None
    publisher = publishers.publisher_of(manifest)
    for installation, workspace in candidates:
        current = parse_version(installation.version)
        if new.prerelease or new <= current or not satisfies(version, f"^{installation.version}"):
            continue
        if not await publishers.may_follow(session, workspace, module, publisher):
            log.info(
                "automatic_upgrade_skipped",
                workspace=workspace.slug,
                slug=installation.slug,
                version=version,
                reason=f"publisher workspace {publisher!r} is not allowed in {workspace.slug!r}",
            )
            continue
        try:
            async with session.begin_nested():
                if await upgrade(
                    session,
                    context,
                    workspace,
                    installation,
                    version=version,
                    accept_breaking=False,
                    automatic=True,
                ):
                    moved.append(f"{workspace.slug}/{installation.slug}")
        except (Conflict, ValidationFailed) as exc:
            log.warning(
                "automatic_upgrade_skipped",
                workspace=workspace.slug,
                slug=installation.slug,
                version=version,
                reason=exc.detail,
            )
    return moved
