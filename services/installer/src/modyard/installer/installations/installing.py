"""Installing a module and the dependencies it is missing, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common import component_refs
from modyard.common.errors import Conflict, InvalidParam, ValidationFailed
from modyard.installer.context import InstallerContext
from modyard.installer.installations.queries import list_installations
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
    new_installation,
    record_edges,
    record_import_edges,
    resolve,
    store_config,
    validated_config,
)
from modyard.installer.models import Installation, Workspace
from modyard.installer.schemas import InstallRequest
from modyard.modules.manifest import ModuleFormat

log = structlog.get_logger(__name__)


@dataclass
class Installed:
    root: Installation
    also_installed: list[Installation]


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
    await lock_workspace(session, workspace)
    existing = await list_installations(session, workspace)
    _check_slug_free(workspace, existing, slug)
    # Dependencies are shared within a workspace; the root is always a new instance.
    shared = {
        item.module: item for item in existing if item.parent_id is None or not is_import(item)
    }
    result = await resolve(
        context,
        request.module,
        request.version,
        # The root is left out so that a second instance may use another version.
        {m: i.version for m, i in shared.items() if m != request.module},
        root_field="/body/module",
    )

    manifests = await fetch_manifests(
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
    # An imported app is a new instance even where the workspace already has that module.
    imports = app_imports(root_manifest)
    imported_modules = {item.app for item in imports}
    manifests |= await fetch_manifests(
        context,
        [
            m
            for m in result.modules.values()
            if m.name in imported_modules and m.name not in manifests
        ],
    )
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
    for item in imports:
        _check_slug_free(workspace, existing, nested_slug(slug, item, root_manifest.name))
    plain, secret_values = validated_config(
        root_manifest, request.config, pointer="/body/config", context=context
    )

    root = new_installation(
        workspace,
        slug,
        result.root,
        root_manifest,
        lock=result.to_lock(),
        pinned=request.pinned,
        actor=actor,
    )
    store_config(context, root, plain, secret_values)
    session.add(root)
    await session.flush()

    by_module: dict[str, Installation] = {name: item for name, item in shared.items()}
    created: list[Installation] = []
    for name in result.modules:
        if name == result.root.name or name in by_module or name in imported_modules:
            continue
        dependency = add_dependency(
            session,
            context,
            workspace,
            result,
            name,
            manifests[name],
            slug=await free_slug(session, workspace, name),
            parent=root,
            config={},
            actor=actor,
        )
        by_module[name] = dependency
        created.append(dependency)
    # One nested instance per import, not per imported module: Prisme.ai apps import the same
    # app several times (one ``Collection`` instance per collection, each with its own config).
    nested = create_imports(
        session, context, workspace, result, manifests, root, imports, actor=actor
    )
    for instance in reversed(nested):
        by_module[instance.module] = instance  # the root's edge to each goes in below
    created.extend(nested)
    await session.flush()

    await record_edges(session, result, by_module, root)
    await record_import_edges(session, result, by_module, root, nested)
    await announce_created(session, context, workspace, [root, *created])
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
