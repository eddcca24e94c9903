"""HTTP API of apps: publishing a workspace, listing published apps and a workspace's instances."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from modyard.common.auth import CurrentPrincipal
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.runtime.apps import publishing
from modyard.runtime.apps.registry_client import RegistryClient
from modyard.runtime.apps.schemas import (
    AppInstanceOut,
    AppInstancePage,
    InstanceAutomation,
    Problem,
    PublishedApp,
    PublishedAppPage,
    PublishIn,
    PublishOut,
    UnpublishOut,
    UnusableAutomation,
)
from modyard.runtime.automations.endpoints import automations_of, check_workspace
from modyard.runtime.automations.program import Program
from modyard.runtime.automations.secret_config import MASK
from modyard.runtime.context import SLOT, Context

router = APIRouter(tags=["apps"], responses=PROBLEM_RESPONSES)
Workspace = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


def registry_of(request: Request) -> RegistryClient:
    client = SLOT.get(request).registry
    if client is None:
        raise RuntimeError("the registry client opens with the automations, in the app's lifespan")
    return client


@router.post(
    "/v1/workspaces/{ws}/publish", status_code=status.HTTP_201_CREATED, response_model=PublishOut
)
async def publish(
    ws: Workspace,
    body: PublishIn,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    context: Context,
) -> PublishOut:
    """Publish the workspace's automations and config as a new immutable version of its app
    (needs the ``publisher`` role in the workspace)."""
    check_workspace(principal, ws)
    await publishing.check_publisher(context.installer, principal, ws)
    service = automations_of(request)
    result = await publishing.publish(
        session, registry_of(request), ws, body.app_name, source=service.source
    )
    return PublishOut(**result.__dict__)


@router.delete("/v1/workspaces/{ws}/publish", response_model=UnpublishOut)
async def unpublish(
    ws: Workspace,
    request: Request,
    session: DbSession,
    principal: CurrentPrincipal,
    context: Context,
) -> UnpublishOut:
    """Withdraw the workspace's app: its instances hear ``apps.deleted``; the name stays."""
    check_workspace(principal, ws)
    await publishing.check_publisher(context.installer, principal, ws)
    service = automations_of(request)
    notified = await publishing.unpublish(session, ws, source=service.source)
    return UnpublishOut(workspace=ws, notified_instances=notified)


@router.get("/v1/apps", response_model=PublishedAppPage)
async def list_apps(session: DbSession, _: CurrentPrincipal) -> PublishedAppPage:
    """Apps published from workspaces."""
    return PublishedAppPage(
        items=[
            PublishedApp(
                app=row.app_name or "",
                workspace=row.workspace,
                version=row.published_version,
                label=row.label,
                description=row.description,
                photo=row.photo,
            )
            for row in await publishing.published_apps(session)
        ]
    )


def _instance_out(program: Program) -> AppInstanceOut:
    return AppInstanceOut(
        slug=".".join(program.path),
        app=program.app or "",
        version=program.app_version or "",
        pinned=program.pinned,
        parent=".".join(program.path[:-1]) or None,
        config={
            key: MASK if isinstance(value, str) and value in program.secrets else value
            for key, value in program.config.items()
        },
        automations=[
            InstanceAutomation(
                slug=automation.slug,
                private=automation.private,
                disabled=automation.disabled,
                endpoint=program.full_name(automation.endpoint) if automation.endpoint else None,
                events=[program.full_name(event) for event in automation.events],
            )
            for automation in program.automations.values()
        ],
        unusable=[
            UnusableAutomation(
                slug=slug,
                problems=[
                    Problem(pointer=pointer or "/", detail=reason) for pointer, reason in found
                ],
            )
            for slug, found in program.unusable.items()
        ],
    )


@router.get("/v1/workspaces/{ws}/apps", response_model=AppInstancePage)
async def list_instances(
    ws: Workspace, request: Request, session: DbSession, principal: CurrentPrincipal
) -> AppInstancePage:
    """The workspace's app instances (nested ones too), as the runtime runs them."""
    check_workspace(principal, ws)
    root = await automations_of(request).programs.get(ws, session)
    return AppInstancePage(
        items=[_instance_out(program) for program in root.programs() if program.path]
    )
