"""The steps installing and upgrading share: lock, resolve, fetch, validate, create, record."""

from __future__ import annotations

import hashlib
import re
import secrets as token_generator
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.common.bus.outbox import record_event
from modyard.common.errors import Conflict, InvalidParam, ValidationFailed
from modyard.common.semver import InvalidVersion
from modyard.installer import resolution as resolver
from modyard.installer.configuration.environment import env_overrides
from modyard.installer.configuration.errors import ConfigInvalid
from modyard.installer.configuration.secrets import (
    secret_paths,
    split_secrets,
)
from modyard.installer.configuration.validation import validate_config
from modyard.installer.context import InstallerContext
from modyard.installer.events import (
    INSTALLATION_CREATED,
    installation_event,
)
from modyard.installer.models import Installation, InstallationDependency, StorageItem, Workspace
from modyard.modules.manifest import AppImport, Manifest

log = structlog.get_logger(__name__)


async def lock_workspace(session: AsyncSession, workspace: Workspace) -> None:
    # One change to a workspace's installations at a time: resolution reads what is installed.
    await session.execute(
        select(Workspace.id).where(Workspace.id == workspace.id).with_for_update()
    )


def is_import(item: Installation) -> bool:
    return "." in item.slug and item.installed_as_dependency


def app_imports(manifest: Manifest) -> list[AppImport]:
    """The imports an installation of ``manifest`` holds as nested instances. An import of the app
    itself is left out: a workspace that installed its own published app carries that instance
    among its imports when it publishes again, and an app cannot contain itself (each version
    would nest one level deeper)."""
    return [item for item in manifest.imports if item.app != manifest.name]


#: What an app's import may be called. Prisme.ai's own app-instance slug rule (its workspaces
#: service's ``SLUG_VALIDATION_REGEXP``, ``^[a-zA-Z0-9 _-]*$``) allows capitals and spaces, and its
#: standard apps are imported so (``Custom Code``, called as ``Custom Code.run``), so the nested
#: instance keeps the slug as written. Dots are left out: they separate an instance from the ones
#: nested in it (``<root>.<import>``).
IMPORT_SLUG_PATTERN = r"^[A-Za-z0-9_-](?:[A-Za-z0-9 _-]*[A-Za-z0-9_-])?$"
#: Longest installation slug (the ``installations.slug`` column).
MAX_SLUG_LENGTH = 128
#: Every slug an installation may have: a new root's (``SLUG_PATTERN``) or a nested instance's
#: ``<root>.<import>``. The API's paths that address an existing installation accept exactly these.
INSTALLATION_SLUG_PATTERN = rf"^[a-zA-Z0-9][a-zA-Z0-9 ._-]{{0,{MAX_SLUG_LENGTH - 1}}}$"


def nested_slug(root_slug: str, imported: AppImport, module: str) -> str:
    """The slug of the instance ``root_slug`` holds for its import ``imported`` (a 422 when that
    import's slug could not be addressed: the module has to be published with another)."""
    slug = f"{root_slug}.{imported.slug}"
    problem, pointer = None, "/body/module"
    if not re.fullmatch(IMPORT_SLUG_PATTERN, imported.slug):
        problem = (
            f"{module} imports {imported.app} as {imported.slug!r}: an import's slug is made of "
            "letters, digits, spaces, '_' and '-' (no dots, no leading or trailing space); "
            "publish a version of the app with another slug."
        )
    elif len(slug) > MAX_SLUG_LENGTH:
        problem = (
            f"The nested instance {slug!r} would be longer than {MAX_SLUG_LENGTH} characters; "
            "install the app under a shorter slug (slug field)."
        )
        pointer = "/body/slug"
    if problem is not None:
        error = ValidationFailed(problem, slug="invalid-import-slug")
        error.errors = [InvalidParam(pointer=pointer, detail=problem)]
        raise error
    return slug


async def resolve(
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


async def fetch_manifests(
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


def validated_config(
    manifest: Manifest,
    values: Mapping[str, Any],
    *,
    pointer: str,
    context: InstallerContext,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The given values (plain, secret) once they validate as the runtime will see them.

    Only what was given is stored: defaults and ``APP_CONFIG_*`` overrides are applied when the
    effective configuration is computed, so that an override can still beat a default.
    """
    overrides = env_overrides(manifest.name, manifest.config, context.environ)
    try:
        stored = validate_config(manifest.config, values, overrides=overrides)
    except ConfigInvalid as exc:
        raise exc.under(pointer) from exc
    return split_secrets(stored, secret_paths(manifest.config))


def store_config(
    context: InstallerContext,
    installation: Installation,
    plain: dict[str, Any],
    secret_values: dict[str, Any],
) -> None:
    """The plain values as they are, the secret ones encrypted (``None`` when there are none)."""
    installation.config = plain
    installation.secrets = context.secrets.encrypt_json(secret_values) if secret_values else None


def new_installation(
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


def add_dependency(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    result: resolver.Resolution,
    name: str,
    manifest: Manifest,
    *,
    slug: str,
    parent: Installation,
    config: Mapping[str, Any],
    actor: str,
) -> Installation:
    """Module ``name`` of ``result`` as a dependency ``parent`` brought in, with its part of the lock.

    Its config (an import's, or none) is stored even if incomplete, since it can be configured
    later; its defaults apply through the effective configuration.
    """
    dependency = new_installation(
        workspace,
        slug,
        result.modules[name],
        manifest,
        lock=sub_lock(result, name),
        pinned=False,
        actor=actor,
    )
    dependency.installed_as_dependency = True
    dependency.parent_id = parent.id
    store_config(context, dependency, *split_secrets(dict(config), secret_paths(manifest.config)))
    session.add(dependency)
    return dependency


def create_imports(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    result: resolver.Resolution,
    manifests: Mapping[str, Manifest],
    root: Installation,
    imports: Sequence[AppImport],
    *,
    actor: str,
) -> list[Installation]:
    """One nested instance ``<root>.<import>`` per import of ``root``'s app, with the import's
    config, each on the version of the imported app the lock holds."""
    return [
        add_dependency(
            session,
            context,
            workspace,
            result,
            item.app,
            manifests[item.app],
            slug=nested_slug(root.slug, item, root.module),
            parent=root,
            config=item.config,
            actor=actor,
        )
        for item in imports
    ]


def sub_lock(result: resolver.Resolution, name: str) -> dict[str, Any]:
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


async def free_slug(session: AsyncSession, workspace: Workspace, wanted: str) -> str:
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


async def record_edges(
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
            if target is not None:
                await _add_edge(session, source, target, dependency.range)
    await session.flush()


async def _add_edge(
    session: AsyncSession, source: Installation, target: Installation, range_: str
) -> None:
    """``source`` needs ``target`` (within ``range_``), recorded once."""
    if source.id == target.id:
        return
    exists = await session.scalar(
        select(InstallationDependency.id).where(
            InstallationDependency.installation_id == source.id,
            InstallationDependency.depends_on_id == target.id,
        )
    )
    if exists is None:
        session.add(
            InstallationDependency(installation_id=source.id, depends_on_id=target.id, range=range_)
        )


async def record_import_edges(
    session: AsyncSession,
    result: resolver.Resolution,
    by_module: Mapping[str, Installation],
    root: Installation,
    nested: Sequence[Installation],
) -> None:
    """Edges of the nested instances :func:`record_edges` cannot tell apart (one module, several
    instances): the root needs each of them, and each needs what its module depends on."""
    needs = {dep.name: dep.range for dep in result.modules[result.root.name].dependencies}
    wanted = [(root, item, needs.get(item.module, "*")) for item in nested]
    for item in nested:
        for dependency in result.modules[item.module].dependencies:
            target = by_module.get(dependency.name)
            if target is not None:
                wanted.append((item, target, dependency.range))
    await session.flush()
    for source, target, range_ in wanted:
        await _add_edge(session, source, target, range_)
    await session.flush()


async def initial_storage(
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


async def announce_created(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    created: Sequence[Installation],
) -> None:
    """Each new installation's initial storage and its ``installation.created`` event."""
    for item in created:
        await initial_storage(session, context, item)
        await record_event(
            session,
            installation_event(INSTALLATION_CREATED, context.settings.source, workspace.slug, item),
        )


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
