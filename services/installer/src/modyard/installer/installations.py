"""Installing, configuring, upgrading and removing modules in a workspace.

An install resolves the whole dependency graph against the registry's index
(:mod:`modyard.installer.resolution`), then, in the caller's transaction, creates the root
installation and every missing dependency, records the dependency edges and the lock, writes the
initial storage (AppCell ``settings.local``) and the events. Nothing is written if any step refuses.
"""

from __future__ import annotations

import hashlib
import secrets as token_generator
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict, InvalidParam, NotFound, ValidationFailed
from modyard.common.semver import InvalidVersion, parse_version, satisfies
from modyard.installer import publishers
from modyard.installer import resolution as resolver
from modyard.installer.configuration.environment import env_overrides
from modyard.installer.configuration.errors import ConfigInvalid
from modyard.installer.configuration.secrets import (
    MASK,
    mask,
    merge_secrets,
    restore_masked,
    secret_paths,
    split_secrets,
)
from modyard.installer.configuration.validation import validate_config
from modyard.installer.context import InstallerContext
from modyard.installer.events import (
    INSTALLATION_CONFIGURED,
    INSTALLATION_CREATED,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
    MAJOR_UPGRADE_REASON,
    components_of,
    installation_event,
)
from modyard.installer.models import Installation, InstallationDependency, StorageItem, Workspace
from modyard.installer.schemas import InstallationOut, InstallRequest
from modyard.modules.manifest import ConfigSpec, Manifest, ModuleFormat

log = structlog.get_logger(__name__)


@dataclass
class Installed:
    root: Installation
    also_installed: list[Installation]


# -- reading ------------------------------------------------------------------------------------


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
        dependencies=sorted(
            slugs[e.depends_on_id] for e in edges if e.installation_id == installation.id
        ),
        dependents=sorted(
            slugs[e.installation_id] for e in edges if e.depends_on_id == installation.id
        ),
        created_at=installation.created_at,
        updated_at=installation.updated_at,
    )


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


# -- installing ---------------------------------------------------------------------------------


async def install(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    request: InstallRequest,
    *,
    actor: str,
) -> Installed:
    slug = request.slug or request.module
    if component_refs.is_reserved_slug(slug):
        detail = (
            f"The slug {slug!r} is reserved: flow nodes 'core.<name>' are the runtime's built-in "
            "components, so this installation's could not be used"
            + (
                ""
                if request.slug
                else f" (the module's name {request.module!r} is the default slug)"
            )
            + "; choose another slug (slug field, modyard install --slug)."
        )
        problem = ValidationFailed(detail, slug="reserved-slug")
        problem.errors = [InvalidParam(pointer="/body/slug", detail=detail)]
        raise problem
    await _lock_workspace(session, workspace)
    existing = await list_installations(session, workspace)
    _check_slug_free(workspace, existing, slug)
    # Dependencies are shared within a workspace; the root is always a new instance.
    shared = {
        item.module: item for item in existing if item.parent_id is None or not _is_import(item)
    }
    result = await _resolve(
        context,
        request.module,
        request.version,
        # The root is left out so that a second instance may use another version.
        {m: i.version for m, i in shared.items() if m != request.module},
        root_field="/body/module",
    )

    manifests = await _manifests(
        context,
        [
            result.root,
            *[
                m
                for m in result.modules.values()
                if m.name not in shared and m.name != result.root.name
            ],
        ],
    )
    root_manifest = manifests[result.root.name]
    if root_manifest.format is ModuleFormat.prismeai and "." in slug:
        # An app instance's dots name its imports (<slug>.<import>): the runtime would take
        # 'acme.nlu' for an import of 'acme', and removing 'acme' would remove it too.
        if request.slug:
            detail = (
                f"An app instance's slug cannot hold dots ({slug!r}): they name its imports "
                f"(<slug>.<import>); choose one without, e.g. {slug.replace('.', '-')!r}."
            )
            problem = ValidationFailed(detail, slug="invalid-slug")
            problem.errors = [InvalidParam(pointer="/body/slug", detail=detail)]
            raise problem
        slug = slug.replace(".", "-")
        _check_slug_free(workspace, existing, slug)
    plain, secret_values = _validated_config(
        root_manifest, request.config, pointer="/body/config", slug=slug, context=context
    )

    root = _new_installation(
        workspace,
        slug,
        result.root,
        root_manifest,
        lock=result.to_lock(),
        pinned=request.pinned,
        actor=actor,
    )
    root.config = plain
    root.secrets = context.secrets.encrypt_json(secret_values) if secret_values else None
    session.add(root)
    await session.flush()

    by_module: dict[str, Installation] = {name: item for name, item in shared.items()}
    created: list[Installation] = []
    imports = {item.app: item for item in root_manifest.imports}
    for name, locked in result.modules.items():
        if name == result.root.name or (name in by_module and name not in imports):
            continue
        manifest = manifests[name]
        imported = imports.get(name)
        dependency_slug = (
            f"{slug}.{imported.slug}" if imported else await _free_slug(session, workspace, name)
        )
        dependency = _new_installation(
            workspace,
            dependency_slug,
            locked,
            manifest,
            lock=_sub_lock(result, name),
            pinned=False,
            actor=actor,
        )
        dependency.installed_as_dependency = True
        dependency.parent_id = root.id
        dependency.config, dependency_secrets = _lenient_config(
            manifest, imported.config if imported else {}
        )
        dependency.secrets = (
            context.secrets.encrypt_json(dependency_secrets) if dependency_secrets else None
        )
        session.add(dependency)
        by_module[name] = dependency
        created.append(dependency)
    await session.flush()

    await _record_edges(session, result, by_module, root)
    for item in (root, *created):
        await _initial_storage(session, context, item)
        await record_event(
            session,
            installation_event(INSTALLATION_CREATED, context.settings.source, workspace.slug, item),
        )
    log.info(
        "installation_created",
        workspace=workspace.slug,
        slug=slug,
        module=root.module,
        version=root.version,
        dependencies=[c.slug for c in created],
    )
    return Installed(root=root, also_installed=created)


def _check_slug_free(workspace: Workspace, existing: Sequence[Installation], slug: str) -> None:
    if any(item.slug == slug for item in existing):
        raise Conflict(
            f"Workspace {workspace.slug!r} already has an installation {slug!r}; choose another "
            "slug to install a second instance.",
            slug="slug-taken",
        )


def _is_import(item: Installation) -> bool:
    return "." in item.slug and item.installed_as_dependency


async def _lock_workspace(session: AsyncSession, workspace: Workspace) -> None:
    # One change to a workspace's installations at a time: resolution reads what is installed.
    await session.execute(
        select(Workspace.id).where(Workspace.id == workspace.id).with_for_update()
    )


async def _resolve(
    context: InstallerContext,
    module: str,
    version: str | None,
    installed: Mapping[str, str],
    *,
    root_field: str,
) -> resolver.Resolution:
    async def index(name: str) -> Sequence[resolver.IndexVersion] | None:
        entries = await context.registry.index(name)
        return None if entries is None else [resolver.IndexVersion.from_json(e) for e in entries]

    try:
        return await resolver.resolve(
            module,
            version,
            index,
            platform_version=context.settings.platform_version,
            installed=installed,
        )
    except InvalidVersion as exc:
        problem = ValidationFailed(str(exc), slug="invalid-version-range")
        problem.errors = [InvalidParam(pointer="/body/version", detail=str(exc))]
        raise problem from exc
    except resolver.UnknownModule as exc:
        if exc.module != module:
            raise Conflict(exc.detail, slug="unresolvable-dependency", module=exc.module) from exc
        problem = ValidationFailed(exc.detail, slug="unknown-module")
        problem.errors = [InvalidParam(pointer=root_field, detail=exc.detail)]
        raise problem from exc
    except resolver.VersionConflict as exc:
        raise Conflict(exc.detail, slug="version-conflict", chain=exc.chain) from exc
    except resolver.ResolutionTooComplex as exc:
        raise Conflict(exc.detail, slug="resolution-too-complex") from exc
    except resolver.PlatformMismatch as exc:
        raise Conflict(
            exc.detail, slug="platform-mismatch", platform=context.settings.platform_version
        ) from exc
    except resolver.ResolutionError as exc:
        raise Conflict(exc.detail, slug="no-matching-version") from exc


async def _manifests(
    context: InstallerContext, locked: Sequence[resolver.Locked]
) -> dict[str, Manifest]:
    manifests: dict[str, Manifest] = {}
    for item in locked:
        document = await context.registry.manifest(item.name, item.version)
        if document is None:
            raise Conflict(
                f"{item.name} {item.version} vanished from the registry; retry.",
                slug="registry-changed",
            )
        manifests[item.name] = Manifest.model_validate(document)
    return manifests


def _config_spec(manifest: Mapping[str, Any]) -> ConfigSpec:
    return ConfigSpec.model_validate(manifest.get("config") or {})


def _validated_config(
    manifest: Manifest,
    values: Mapping[str, Any],
    *,
    pointer: str,
    slug: str,
    context: InstallerContext,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The given values (plain, secret) once they validate as the runtime will see them.

    Only what was given is stored: defaults and ``APP_CONFIG_*`` overrides are applied when the
    effective configuration is computed, so that an override can still beat a default.
    """
    overrides = env_overrides(slug, manifest.config, context.environ)
    try:
        stored = validate_config(manifest.config, values, overrides=overrides)
    except ConfigInvalid as exc:
        raise exc.under(pointer) from exc
    return split_secrets(stored, secret_paths(manifest.config))


def _lenient_config(
    manifest: Manifest, values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dependency's config (an import's, or none): stored even if incomplete, since it can be
    configured later; its defaults apply through the effective configuration."""
    return split_secrets(dict(values), secret_paths(manifest.config))


def _new_installation(
    workspace: Workspace,
    slug: str,
    locked: resolver.Locked,
    manifest: Manifest,
    *,
    lock: dict[str, Any],
    pinned: bool,
    actor: str,
) -> Installation:
    return Installation(
        id=uuid.uuid4(),
        workspace_id=workspace.id,
        slug=slug,
        module=manifest.name,
        version=manifest.version,
        format=manifest.format.value,
        kind=manifest.kind.value,
        digest=locked.digest,
        manifest=manifest.model_dump(mode="json", by_alias=True),
        lock=lock,
        pinned=pinned,
        installed_as_dependency=False,
        config={},
        created_by=actor,
    )


def _sub_lock(result: resolver.Resolution, name: str) -> dict[str, Any]:
    """The part of the lock reachable from ``name``."""
    full = result.to_lock()
    modules = full.get("modules", {})
    reachable: list[str] = [name]
    seen = {name}
    while reachable:
        current = result.modules.get(reachable.pop())
        if current is None:
            continue
        for dependency in current.dependencies:
            if dependency.name not in seen:
                seen.add(dependency.name)
                reachable.append(dependency.name)
    return {
        **full,
        "root": name,
        "modules": {key: value for key, value in modules.items() if key in seen},
    }


async def _free_slug(session: AsyncSession, workspace: Workspace, wanted: str) -> str:
    taken = set(
        (
            await session.scalars(
                select(Installation.slug).where(Installation.workspace_id == workspace.id)
            )
        ).all()
    )
    if component_refs.is_reserved_slug(wanted):
        wanted = f"module-{wanted}"  # a dependency named like the built-ins stays reachable
    candidate, counter = wanted, 1
    while candidate in taken:
        counter += 1
        candidate = f"{wanted}-{counter}"
    return candidate


async def _record_edges(
    session: AsyncSession,
    result: resolver.Resolution,
    by_module: Mapping[str, Installation],
    root: Installation,
) -> None:
    for name, locked in result.modules.items():
        source = root if name == result.root.name else by_module.get(name)
        if source is None:
            continue
        for dependency in locked.dependencies:
            target = by_module.get(dependency.name)
            if target is None or target.id == source.id:
                continue
            exists = await session.scalar(
                select(InstallationDependency.id).where(
                    InstallationDependency.installation_id == source.id,
                    InstallationDependency.depends_on_id == target.id,
                )
            )
            if exists is None:
                session.add(
                    InstallationDependency(
                        installation_id=source.id, depends_on_id=target.id, range=dependency.range
                    )
                )
    await session.flush()


async def _initial_storage(
    session: AsyncSession, context: InstallerContext, installation: Installation
) -> None:
    """A storage credential for modules that require storage, and AppCell's ``settings.local``."""
    manifest = installation.manifest
    if not (manifest.get("requires") or {}).get("storage"):
        return
    token = "mys_" + token_generator.token_urlsafe(32)
    installation.storage_token = context.secrets.encrypt_json(token)
    installation.storage_token_hash = hashlib.sha256(token.encode()).hexdigest()
    local = ((manifest.get("cell") or {}).get("settings") or {}).get("settings.local")
    if isinstance(local, dict):
        for key, value in settings_local_entries(local).items():
            session.add(StorageItem(installation_id=installation.id, key=key, value=value))


def settings_local_entries(local: Mapping[str, Any]) -> dict[str, Any]:
    """AppCell writes ``settings.local`` at most two levels deep: ``a`` or ``a/b`` keys."""
    entries: dict[str, Any] = {}
    for key, value in local.items():
        if isinstance(value, dict) and value:
            for sub_key, sub_value in value.items():
                entries[f"{key}/{sub_key}"] = sub_value
        else:
            entries[str(key)] = value
    return entries


# -- configuring --------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def configure(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    installation: Installation,
    patch: Mapping[str, Any],
) -> None:
    manifest = Manifest.model_validate(installation.manifest)
    current = full_config(context, installation)
    wanted = restore_masked(
        merge_patch(current, dict(patch)), current, secret_paths(manifest.config)
    )
    plain, secret_values = _validated_config(
        manifest, wanted, pointer="/body/config", slug=installation.slug, context=context
    )
    installation.config = plain
    installation.secrets = context.secrets.encrypt_json(secret_values) if secret_values else None
    await session.flush()
    await record_event(
        session,
        installation_event(
            INSTALLATION_CONFIGURED, context.settings.source, workspace.slug, installation
        ),
    )


# -- upgrading ----------------------------------------------------------------------------------


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
    await _lock_workspace(session, workspace)
    others = [
        item for item in await list_installations(session, workspace) if item.id != installation.id
    ]
    installed = {item.module: item.version for item in others if item.module != installation.module}
    result = await _resolve(
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
    manifests = await _manifests(
        context,
        [m for m in result.modules.values() if m.name == target.name or m.name not in installed],
    )
    manifest = manifests[target.name]
    plain, secret_values = _validated_config(
        manifest,
        full_config(context, installation),
        pointer="/config",
        slug=installation.slug,
        context=context,
    )

    by_module = {item.module: item for item in others}
    created: list[Installation] = []
    for name, locked in result.modules.items():
        if name == target.name or name in by_module:
            continue
        dependency = _new_installation(
            workspace,
            await _free_slug(session, workspace, name),
            locked,
            manifests[name],
            lock=_sub_lock(result, name),
            pinned=False,
            actor="installer",
        )
        dependency.installed_as_dependency = True
        dependency.parent_id = installation.id
        dependency.config, extra_secrets = _lenient_config(manifests[name], {})
        dependency.secrets = context.secrets.encrypt_json(extra_secrets) if extra_secrets else None
        session.add(dependency)
        by_module[name] = dependency
        created.append(dependency)

    installation.version = manifest.version
    installation.digest = target.digest
    installation.manifest = manifest.model_dump(mode="json", by_alias=True)
    installation.lock = result.to_lock()
    installation.config = plain
    installation.secrets = context.secrets.encrypt_json(secret_values) if secret_values else None
    await session.flush()
    await session.execute(
        delete(InstallationDependency).where(
            InstallationDependency.installation_id == installation.id
        )
    )
    await _record_edges(session, result, by_module, installation)
    for item in created:
        await _initial_storage(session, context, item)
        await record_event(
            session,
            installation_event(INSTALLATION_CREATED, context.settings.source, workspace.slug, item),
        )
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


# -- removing -----------------------------------------------------------------------------------


async def remove(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    installation: Installation,
    *,
    force: bool,
) -> list[str]:
    """Delete the installation and the app instances nested in it; returns the removed slugs."""
    await _lock_workspace(session, workspace)
    nested = list(
        (
            await session.scalars(
                select(Installation).where(Installation.parent_id == installation.id)
            )
        ).all()
    )
    doomed = [installation, *[item for item in nested if _is_import(item)]]
    doomed_ids = {item.id for item in doomed}
    dependents = (
        (
            await session.execute(
                select(Installation.slug)
                .join(
                    InstallationDependency,
                    InstallationDependency.installation_id == Installation.id,
                )
                .where(
                    InstallationDependency.depends_on_id.in_(doomed_ids),
                    Installation.id.not_in(doomed_ids),
                )
            )
        )
        .scalars()
        .all()
    )
    if dependents and not force:
        raise Conflict(
            f"{', '.join(sorted(set(dependents)))} depend(s) on {installation.slug!r}; remove them first, "
            "or send ?force=true to remove it anyway (they will stop working until it is reinstalled).",
            slug="has-dependents",
            dependents=sorted(set(dependents)),
        )
    for item in doomed:
        await record_event(
            session,
            installation_event(
                INSTALLATION_REMOVED,
                context.settings.source,
                workspace.slug,
                item,
                forced=bool(dependents),
            ),
        )
    for item in nested:
        if item.id not in doomed_ids:
            item.parent_id = None
    for item in doomed:
        await session.delete(item)
    await session.flush()
    return [item.slug for item in doomed]
