"""System webhooks: the subscriptions, adding one, and each one's deliveries."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.rendering import problem_words, render
from modyard.contracts.api.runtime import DeliveryOut
from modyard.sdk.client import ModyardAPIError

router = APIRouter(prefix="/webhooks", tags=["system webhooks"])

DELIVERIES = 50


@router.get("")
async def list_webhooks(request: Request, console: ConsoleDep) -> Response:
    webhooks = await console.client.runtime.webhooks()
    return render(
        request, "webhooks/list.html", {"console": console, "webhooks": webhooks, "values": {}}
    )


@router.post("")
async def add(request: Request, console: ConsoleDep) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    events = [item.strip() for item in form.get("events", "").replace(",", " ").split() if item]
    try:
        created = await console.client.runtime.add_webhook(
            form.get("url", "").strip(),
            events=events,
            secret=form.get("secret", ""),
            description=form.get("description", "").strip() or None,
        )
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        form.pop("secret", None)
        webhooks = await console.client.runtime.webhooks()
        context: dict[str, Any] = {
            "console": console,
            "webhooks": webhooks,
            "values": form,
            "problem": problem_words(exc),
        }
        return render(request, "webhooks/list.html", context, status_code=exc.status)
    notice = quote(f"Subscribed {created.url}.")
    return RedirectResponse(f"/webhooks/{created.id}?notice={notice}", status_code=303)


@router.get("/{webhook_id}")
async def detail(
    request: Request,
    webhook_id: uuid.UUID,
    console: ConsoleDep,
) -> Response:
    runtime = console.client.runtime
    webhook = await runtime.webhook(str(webhook_id))
    deliveries: list[DeliveryOut] = []
    async for item in runtime.deliveries(str(webhook_id), page_size=DELIVERIES):
        deliveries.append(item)
        if len(deliveries) >= DELIVERIES:
            break
    return render(
        request,
        "webhooks/detail.html",
        {"console": console, "webhook": webhook, "deliveries": deliveries},
    )


@router.post("/{webhook_id}/test")
async def test(webhook_id: uuid.UUID, console: ConsoleDep) -> Response:
    await console.client.runtime.test_webhook(str(webhook_id))
    notice = quote("A webhook.test delivery was queued; it appears below.")
    return RedirectResponse(f"/webhooks/{webhook_id}?notice={notice}", status_code=303)


@router.post("/{webhook_id}/delete")
async def delete(webhook_id: uuid.UUID, console: ConsoleDep) -> Response:
    await console.client.runtime.remove_webhook(str(webhook_id))
    return RedirectResponse(f"/webhooks?notice={quote('Webhook removed.')}", status_code=303)
