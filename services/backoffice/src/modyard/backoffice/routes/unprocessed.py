"""Unprocessed messages: the runtime's dead-letter store, filtered; retry and delete, one or many."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import ConsoleDep
from modyard.backoffice.rendering import render
from modyard.common.errors import InvalidParam, ValidationFailed
from modyard.contracts.api.runtime import UnprocessedOut

router = APIRouter(prefix="/unprocessed", tags=["unprocessed messages"])

PAGE = 100
Text = Annotated[str | None, Query(max_length=200)]
#: ``datetime-local`` inputs send "" when empty, which is no filter rather than a bad date.
When = Annotated[str | None, Query(max_length=64)]


def moment(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(
            f"{field} must be a date and time, e.g. 2026-11-21T08:30.",
            errors=[InvalidParam(pointer=f"/query/{field}", detail=f"{value!r} is no date")],
        ) from None


def _filters(
    workspace: str | None, flow: str | None, node: str | None, since: Any, until: Any
) -> dict[str, Any]:
    values = {"workspace": workspace, "flow": flow, "node": node, "since": since, "until": until}
    return {key: value for key, value in values.items() if value not in (None, "")}


def _back(filters: dict[str, Any], notice: str) -> RedirectResponse:
    query = urlencode({**{k: str(v) for k, v in filters.items()}, "notice": notice})
    return RedirectResponse(f"/unprocessed?{query}", status_code=303)


@router.get("")
async def list_messages(
    request: Request,
    console: ConsoleDep,
    workspace: Text = None,
    flow: Text = None,
    node: Text = None,
    since: When = None,
    until: When = None,
) -> Response:
    since_at, until_at = moment(since, "since"), moment(until, "until")
    filters = _filters(workspace, flow, node, since_at, until_at)
    messages: list[UnprocessedOut] = []
    async for item in console.client.runtime.unprocessed(**filters, page_size=PAGE):
        messages.append(item)
        if len(messages) > PAGE:
            break
    return render(
        request,
        "unprocessed/list.html",
        {
            "console": console,
            "messages": messages[:PAGE],
            "more": len(messages) > PAGE,
            "filters": filters,
            "values": {
                "workspace": workspace or "",
                "flow": flow or "",
                "node": node or "",
                "since": since_at.strftime("%Y-%m-%dT%H:%M") if since_at else "",
                "until": until_at.strftime("%Y-%m-%dT%H:%M") if until_at else "",
            },
        },
    )


@router.get("/{message_id}")
async def detail(request: Request, message_id: uuid.UUID, console: ConsoleDep) -> Response:
    message = await console.client.runtime.unprocessed_message(str(message_id))
    return render(request, "unprocessed/detail.html", {"console": console, "message": message})


@router.post("/{message_id}/retry")
async def retry(message_id: uuid.UUID, console: ConsoleDep) -> Response:
    await console.client.runtime.retry_unprocessed(str(message_id))
    return _back({}, "The message was put back into its flow.")


@router.post("/{message_id}/delete")
async def delete(message_id: uuid.UUID, console: ConsoleDep) -> Response:
    await console.client.runtime.delete_unprocessed(str(message_id))
    return _back({}, "The message was deleted.")


@router.post("/bulk")
async def bulk(
    console: ConsoleDep,
    action: Annotated[str, Form(pattern=r"^(retry|delete)-(selected|matching)$")],
    ids: Annotated[list[uuid.UUID], Form()] = [],  # noqa: B006 - FastAPI copies defaults
    workspace: Annotated[str | None, Form(max_length=200)] = None,
    flow: Annotated[str | None, Form(max_length=200)] = None,
    node: Annotated[str | None, Form(max_length=200)] = None,
    since: Annotated[str | None, Form(max_length=64)] = None,
    until: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    runtime = console.client.runtime
    filters = _filters(workspace, flow, node, moment(since, "since"), moment(until, "until"))
    verb, scope = action.split("-")
    if scope == "selected":
        if not ids:
            return _back(filters, "Select messages first.")
        for message_id in ids:
            if verb == "retry":
                await runtime.retry_unprocessed(str(message_id))
            else:
                await runtime.delete_unprocessed(str(message_id))
        count = len(ids)
    elif not filters:
        # Everything at once is allowed by the API but never from one stray click here.
        return _back(filters, "Set a filter first: matching messages are those the filters show.")
    elif verb == "retry":
        count = (await runtime.retry_unprocessed_matching(**filters)).count
    else:
        count = (await runtime.delete_unprocessed_matching(**filters)).count
    done = "retried" if verb == "retry" else "deleted"
    return _back(filters, f"{count} message{'s' if count != 1 else ''} {done}.")
