"""Module workers' broker credentials (issue = rotate, revoke): see the service module."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request, Response, status
from pydantic import BaseModel, Field

from modyard.common.auth import CurrentPrincipal, Principal
from modyard.common.bus.management import BrokerManagement
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, Forbidden
from modyard.runtime.context import SLOT, Context
from modyard.runtime.worker_access import service as worker_access

router = APIRouter(
    prefix="/v1/workspaces/{ws}/installations/{slug}/worker-credentials",
    tags=["module-workers"],
    responses=PROBLEM_RESPONSES,
)
Workspace = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Slug = Annotated[str, Path(min_length=1, max_length=128)]


class IssueBody(BaseModel):
    #: Also close the connections logged in with the previous password (a leaked one).
    close_connections: bool = False


class WorkerCredentialsOut(BaseModel):
    """What ``modyard cell run <module:worker> --credentials <file>`` takes. The password is in
    ``amqp_url`` and shown only here: issuing again sets a new one."""

    installation_id: uuid.UUID
    workspace: str
    slug: str
    module: str
    amqp_url: str
    vhost: str
    username: str
    queue: str
    reply_exchange: str
    closed_connections: int = Field(description="connections closed with the old password")


def broker_management(request: Request) -> BrokerManagement:
    management = SLOT.get(request).management
    if management is None:
        raise RuntimeError("the broker's management client opens with the app's lifespan")
    return management


Management = Annotated[BrokerManagement, Depends(broker_management)]


def _check_workspace(principal: Principal, workspace: str) -> None:
    if not principal.can_access_workspace(workspace):
        raise Forbidden(
            f"Your token does not name workspace {workspace!r}: only its members and operators "
            "get its module workers' credentials."
        )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkerCredentialsOut)
async def issue_worker_credentials(
    ws: Workspace,
    slug: Slug,
    session: DbSession,
    principal: CurrentPrincipal,
    management: Management,
    context: Context,
    body: Annotated[IssueBody | None, Body()] = None,
) -> WorkerCredentialsOut:
    """Issue (or rotate) the broker credentials of the installation's module worker."""
    _check_workspace(principal, ws)
    installation = await worker_access.amqp_installation(session, ws, slug)
    issued = await worker_access.issue(
        management,
        installation,
        close_connections=(body or IssueBody()).close_connections,
        worker_address=context.settings.module_worker_broker_address,
    )
    return WorkerCredentialsOut(
        installation_id=installation.installation_id,
        workspace=installation.workspace,
        slug=installation.slug,
        module=installation.module,
        amqp_url=issued.amqp_url,
        vhost=issued.vhost,
        username=issued.username,
        queue=issued.queue,
        reply_exchange=issued.reply_exchange,
        closed_connections=issued.closed_connections,
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_worker_credentials(
    ws: Workspace,
    slug: Slug,
    session: DbSession,
    principal: CurrentPrincipal,
    management: Management,
) -> Response:
    """Delete the worker's broker user and queue and close its connections."""
    _check_workspace(principal, ws)
    installation = await worker_access.amqp_installation(session, ws, slug)
    await worker_access.revoke(management, installation.installation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
