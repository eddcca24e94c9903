from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from modyard.common.auth import Principal, Role, require_roles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.deployer.context import Context
from modyard.deployer.deployments import logs, service
from modyard.deployer.models import Deployment, Status
from modyard.deployer.schemas import (
    NAME_PATTERN,
    DeploymentCreate,
    DeploymentOut,
    DeploymentPage,
    DeploymentPatch,
)

router = APIRouter(prefix="/v1/deployments", tags=["deployments"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]
#: Services read deployments too: the runtime's http executor finds a module's endpoint by name.
Reader = Annotated[Principal, Depends(require_roles(Role.operator, Role.service))]
Ref = Annotated[str, Path(min_length=1, max_length=63, description="The deployment's id or name")]
ACCEPTED = {"description": "Accepted: the deployer is making it so (poll the deployment)"}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DeploymentOut)
async def create_deployment(
    body: DeploymentCreate, session: DbSession, context: Context, _: Operator, response: Response
) -> DeploymentOut:
    """Register a container module (status ``not_deployed``); the token and env are encrypted."""
    deployment = await service.create(session, context.secrets, context.settings, body)
    response.headers["Location"] = f"/v1/deployments/{deployment.id}"
    return service.describe(deployment)


@router.get("", response_model=DeploymentPage)
async def list_deployments(
    session: DbSession,
    context: Context,
    _: Reader,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    status: Annotated[Status | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> DeploymentPage:
    """Deployments by name, filtered by name or status, paginated with an opaque cursor."""
    return await service.list_page(
        session,
        name=name,
        status=status,
        cursor=cursor,
        limit=limit or context.settings.default_page_size,
    )


@router.get("/{ref}", response_model=DeploymentOut)
async def get_deployment(ref: Ref, session: DbSession, _: Reader) -> DeploymentOut:
    return service.describe(await service.get(session, ref))


async def _change(session: DbSession, context: Context, ref: str) -> Deployment:
    deployment = await service.get(session, ref, for_update=True)
    service.wake_after_commit(session, context.reconciler.wake, deployment.id)
    return deployment


@router.post(
    "/{ref}/deploy",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeploymentOut,
    responses={202: ACCEPTED},
)
async def deploy(ref: Ref, session: DbSession, context: Context, _: Operator) -> DeploymentOut:
    """Pull the image with the token and start it: ``deploying``, then ``running`` or ``warn``."""
    deployment = await _change(session, context, ref)
    await service.deploy(session, context.settings.source, deployment)
    return service.describe(deployment)


@router.post("/{ref}/suspend", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentOut)
async def suspend(ref: Ref, session: DbSession, context: Context, _: Operator) -> DeploymentOut:
    """Stop the process and keep its container and data (``suspended``)."""
    deployment = await _change(session, context, ref)
    await service.suspend(session, deployment)
    return service.describe(deployment)


@router.post("/{ref}/resume", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentOut)
async def resume(ref: Ref, session: DbSession, context: Context, _: Operator) -> DeploymentOut:
    """Start a suspended deployment's process again."""
    deployment = await _change(session, context, ref)
    await service.resume(session, context.settings.source, deployment)
    return service.describe(deployment)


@router.patch("/{ref}", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentOut)
async def update(
    ref: Ref, body: DeploymentPatch, session: DbSession, context: Context, _: Operator
) -> DeploymentOut:
    """A new tag and/or env: a running deployment is redeployed, the old container serving until
    the new one is up (if the new one fails: ``warn``, and the old one keeps serving)."""
    deployment = await _change(session, context, ref)
    await service.update(session, context.secrets, context.settings, deployment, body)
    return service.describe(deployment)


@router.delete("/{ref}", status_code=status.HTTP_202_ACCEPTED, response_model=DeploymentOut)
async def delete(ref: Ref, session: DbSession, context: Context, _: Operator) -> DeploymentOut:
    """Stop the process, remove its container and its data volume, then the deployment."""
    deployment = await _change(session, context, ref)
    await service.delete(session, context.settings.source, deployment)
    return service.describe(deployment)


@router.get(
    "/{ref}/logs",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "The container's output"}},
)
async def container_logs(
    ref: Ref,
    session: DbSession,
    context: Context,
    _: Operator,
    tail: Annotated[int | None, Query(ge=0, le=100_000, description="Last N lines")] = None,
    since: Annotated[
        datetime | None, Query(description="Only output after this time (ISO 8601 or epoch)")
    ] = None,
    follow: Annotated[bool, Query(description="Keep streaming new output")] = False,
    timestamps: bool = False,
) -> StreamingResponse:
    """The container's stdout and stderr (of the newest generation)."""
    deployment = await service.get(session, ref)
    container_id = await logs.container_for_logs(context.backend, deployment)
    chunks: AsyncIterator[bytes] = context.backend.logs(
        container_id, tail=tail, since=since, follow=follow, timestamps=timestamps
    )
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")
