"""``/v1/system-webhooks``: operators subscribe URLs to system events and inspect deliveries."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from modyard.common.auth import Principal, Role, require_roles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.common.secrets import SecretBox
from modyard.runtime.webhooks import service
from modyard.runtime.webhooks.models import DeliveryStatus
from modyard.runtime.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreate,
    WebhookOut,
    WebhookPage,
)

router = APIRouter(
    prefix="/v1/system-webhooks", tags=["system-webhooks"], responses=PROBLEM_RESPONSES
)
Operator = Annotated[Principal, Depends(require_roles(Role.operator))]


def _secret_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secrets
    return box


Secrets = Annotated[SecretBox, Depends(_secret_box)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookOut)
async def create_webhook(
    body: WebhookCreate,
    session: DbSession,
    principal: Operator,
    secrets: Secrets,
    response: Response,
) -> WebhookOut:
    """Subscribe a URL to system events; deliveries are signed with ``secret`` (stored
    encrypted, never shown again)."""
    webhook = await service.create_webhook(session, body, secrets, created_by=principal.subject)
    response.headers["Location"] = f"{router.prefix}/{webhook.id}"
    return service.describe_webhook(webhook)


@router.get("", response_model=WebhookPage)
async def list_webhooks(session: DbSession, _: Operator) -> WebhookPage:
    """Every system webhook, oldest first (secrets are never shown)."""
    return WebhookPage(
        items=[service.describe_webhook(w) for w in await service.list_webhooks(session)]
    )


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: uuid.UUID, session: DbSession, _: Operator) -> WebhookOut:
    return service.describe_webhook(await service.get_webhook(session, webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_webhook(webhook_id: uuid.UUID, session: DbSession, _: Operator) -> Response:
    """Unsubscribe; the webhook's deliveries, pending ones included, are deleted with it."""
    await service.delete_webhook(session, await service.get_webhook(session, webhook_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    webhook_id: uuid.UUID,
    session: DbSession,
    _: Operator,
    status_filter: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this state")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> DeliveryPage:
    """The webhook's deliveries, newest first, with their payload, attempts and outcome."""
    webhook = await service.get_webhook(session, webhook_id)
    return await service.list_deliveries(
        session, webhook, status=status_filter, limit=limit, cursor=cursor
    )


@router.get("/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: DbSession, _: Operator
) -> DeliveryOut:
    webhook = await service.get_webhook(session, webhook_id)
    return service.describe_delivery(await service.get_delivery(session, webhook, delivery_id))


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=DeliveryOut,
)
async def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: DbSession, _: Operator
) -> DeliveryOut:
    """Send a delivered or failed delivery again (same body), with a fresh retry schedule."""
    webhook = await service.get_webhook(session, webhook_id)
    return service.describe_delivery(await service.redeliver(session, webhook, delivery_id))


@router.post("/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED, response_model=DeliveryOut)
async def send_test_delivery(webhook_id: uuid.UUID, session: DbSession, _: Operator) -> DeliveryOut:
    """Enqueue a ``webhook.test`` delivery to this webhook; follow it in its deliveries."""
    webhook = await service.get_webhook(session, webhook_id)
    return service.describe_delivery(await service.enqueue_test(session, webhook))
