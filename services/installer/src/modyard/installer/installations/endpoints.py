from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status
from fastapi.responses import JSONResponse

from modyard.common.auth import CurrentPrincipal, Principal, Role
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Forbidden
from modyard.installer import idempotency
from modyard.installer.configuration.environment import effective_config
from modyard.installer.context import Context
from modyard.installer.installations import configuring, installing, queries, removing, upgrading
from modyard.installer.installations.queries import full_config
from modyard.installer.installations.steps import INSTALLATION_SLUG_PATTERN
from modyard.installer.schemas import (
    WORKSPACE_PATTERN,
    ConfigPatch,
    EffectiveConfig,
    InstallationOut,
    InstallationPage,
    InstallRequest,
    InstallResult,
    UpgradeRequest,
)
from modyard.installer.workspaces import service as workspaces
from modyard.modules.manifest import ConfigSpec

router = APIRouter(
    prefix="/v1/workspaces/{ws}/installations", tags=["installations"], responses=PROBLEM_RESPONSES
)


async def service_only(principal: CurrentPrincipal) -> Principal:
    # Decrypted configuration is for the runtime, not for people, operators included.
    if Role.service not in principal.roles:
        raise Forbidden("Only services (the runtime) may read the effective configuration.")
    return principal


Service = Annotated[Principal, Depends(service_only)]
WorkspaceSlug = Annotated[str, Path(pattern=WORKSPACE_PATTERN)]
# An app's import keeps its Prisme.ai slug (``helpdesk.knowledgeBase``, ``prompt-store.Custom
# Code``), so an existing installation is addressed with capitals and spaces too (``%20`` in the
# URL): every slug the installer creates; new slugs still follow SLUG_PATTERN.
Slug = Annotated[str, Path(pattern=INSTALLATION_SLUG_PATTERN)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=InstallResult,
    responses={
        200: {"model": InstallResult, "description": "Replayed answer of an Idempotency-Key"}
    },
)
async def install(
    ws: WorkspaceSlug,
    body: InstallRequest,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Install a module (and whatever it needs) in the workspace, as a new app instance."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    scope, body_hash = f"install:{ws}", idempotency.request_hash(body.model_dump())
    ttl = timedelta(hours=context.settings.idempotency_hours)
    if idempotency_key is not None:
        replayed = await idempotency.replay(session, idempotency_key, scope, body_hash, ttl)
        if replayed is not None:
            return JSONResponse(
                replayed[1], status_code=status.HTTP_200_OK, headers={"Idempotent-Replayed": "true"}
            )
    result = await installing.install(session, context, workspace, body, actor=principal.subject)
    described = await queries.describe(session, workspace, result.root)
    answer = InstallResult(
        **described.model_dump(), also_installed=[item.slug for item in result.also_installed]
    )
    payload = answer.model_dump(mode="json")
    if idempotency_key is not None:
        await idempotency.remember(
            session, idempotency_key, scope, body_hash, status.HTTP_201_CREATED, payload
        )
    return JSONResponse(
        payload,
        status_code=status.HTTP_201_CREATED,
        headers={"Location": f"/v1/workspaces/{ws}/installations/{result.root.slug}"},
    )


@router.get("", response_model=InstallationPage)
async def list_installations(
    ws: WorkspaceSlug, session: DbSession, principal: CurrentPrincipal
) -> InstallationPage:
    workspace = await workspaces.get_workspace(session, ws, principal)
    items = await queries.list_installations(session, workspace)
    return InstallationPage(
        items=[await queries.describe(session, workspace, item) for item in items]
    )


@router.get("/{slug}", response_model=InstallationOut)
async def get_installation(
    ws: WorkspaceSlug, slug: Slug, session: DbSession, principal: CurrentPrincipal
) -> InstallationOut:
    """One installation; secret configuration values are masked."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    return await queries.describe(
        session, workspace, await queries.get_installation(session, workspace, slug)
    )


@router.patch("/{slug}/config", response_model=InstallationOut)
async def configure(
    ws: WorkspaceSlug,
    slug: Slug,
    body: ConfigPatch,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> InstallationOut:
    """Change the configuration (a JSON merge patch); it is validated again as a whole."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    installation = await queries.get_installation(session, workspace, slug)
    await configuring.configure(session, context, workspace, installation, body.config)
    return await queries.describe(session, workspace, installation)


@router.post("/{slug}/upgrade", response_model=InstallationOut)
async def upgrade(
    ws: WorkspaceSlug,
    slug: Slug,
    body: UpgradeRequest,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
) -> InstallationOut:
    """Move to another version; a new major version needs ``accept_breaking``."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    installation = await queries.get_installation(session, workspace, slug)
    await upgrading.upgrade(
        session,
        context,
        workspace,
        installation,
        version=body.version,
        accept_breaking=body.accept_breaking,
    )
    return await queries.describe(session, workspace, installation)


@router.delete("/{slug}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def remove(
    ws: WorkspaceSlug,
    slug: Slug,
    session: DbSession,
    context: Context,
    principal: CurrentPrincipal,
    force: Annotated[bool, Query(description="Remove even if other installations need it")] = False,
) -> Response:
    workspace = await workspaces.get_workspace(session, ws, principal)
    installation = await queries.get_installation(session, workspace, slug)
    await removing.remove(session, context, workspace, installation, force=force)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{slug}/effective-config", response_model=EffectiveConfig)
async def get_effective_config(
    ws: WorkspaceSlug, slug: Slug, session: DbSession, context: Context, principal: Service
) -> EffectiveConfig:
    """The configuration the runtime runs with: instance values, then ``APP_CONFIG_<MODULE>_<KEY>``
    / ``APP_SECRET_…`` environment variables (the installed module's, never the installation's
    slug: see ``configuration.environment``), then the module's defaults. Service role only."""
    workspace = await workspaces.get_workspace(session, ws, principal)
    installation = await queries.get_installation(session, workspace, slug)
    spec = ConfigSpec.model_validate(installation.manifest.get("config") or {})
    token = (
        context.secrets.decrypt_json(installation.storage_token)
        if installation.storage_token
        else None
    )
    return EffectiveConfig(
        installation_id=installation.id,
        slug=installation.slug,
        config=effective_config(
            spec, full_config(context, installation), installation.module, context.environ
        ),
        storage_token=token,
    )
