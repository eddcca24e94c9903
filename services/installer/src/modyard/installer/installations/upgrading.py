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
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    MAJOR_UPGRADE_REASON,
    components_of,
    installation_event,
)
from modyard.installer.installations.queries import full_config, list_installations
from modyard.installer.installations.steps import (
    add_dependency,
    announce_created,
    app_imports,
    create_imports,
    fetch_manifests,
    free_slug,
    is_import,
    lock_workspace,
    nested_slug,
    record_edges,
    record_import_edges,
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
    # Its own nested instances (imports) stay on their version; other apps' are theirs alone.
    nested = {
        item.slug: item for item in others if item.parent_id == installation.id and is_import(item)
    }
    shared = [item for item in others if not is_import(item) or item.slug in nested]
    installed = {item.module: item.version for item in shared if item.module != installation.module}
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
    imports = {
        nested_slug(installation.slug, item, manifest.name): item for item in app_imports(manifest)
    }
    new_imports = [item for slug, item in imports.items() if slug not in nested]
    imported_modules = {item.app for item in imports.values()}
    manifests |= await fetch_manifests(
        context,
        [
            result.modules[name]
            for name in {item.app for item in new_imports}
            if name not in manifests
        ],
    )
    taken = {item.slug for item in others} - set(nested)
    for slug in imports:
        if slug in taken:
            raise Conflict(
                f"{installation.module} {target.version} imports an app as {slug!r}, but "
                f"workspace {workspace.slug!r} has an installation of that slug; remove it first.",
                slug="slug-taken",
            )
    plain, secret_values = validated_config(
        manifest,
        full_config(context, installation),
        pointer="/config",
        context=context,
    )

    by_module = {item.module: item for item in shared}
    created: list[Installation] = []
    for name in result.modules:
        if name == target.name or name in by_module or name in imported_modules:
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

    # The nested instances follow the new version's imports: new ones are created (with the
    # import's config), dropped ones removed; kept ones keep their config and version.
    added = create_imports(
        session, context, workspace, result, manifests, installation, new_imports, actor="installer"
    )
    created.extend(added)
    dropped = [item for slug, item in nested.items() if slug not in imports]
    for item in dropped:
        await record_event(
            session,
            installation_event(
                INSTALLATION_REMOVED, context.settings.source, workspace.slug, item, forced=False
            ),
        )
        await session.delete(item)
    current = [item for slug, item in nested.items() if slug in imports] + added
    for item in reversed(current):
        by_module[item.module] = item

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
    await record_import_edges(session, result, by_module, installation, current)
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
