from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response, status
from pydantic import BeforeValidator

from modyard.common.auth import CurrentPrincipal, Principal
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES, BadRequest, Forbidden, NotFound
from modyard.runtime.context import Context
from modyard.runtime.cursors import decode_cursor, encode_cursor
from modyard.runtime.models import UnprocessedMessage
from modyard.runtime.schemas import BulkResult, RetryBody, UnprocessedOut, UnprocessedPage
from modyard.runtime.unprocessed import service as unprocessed

router = APIRouter(
    prefix="/v1/unprocessed-messages", tags=["unprocessed-messages"], responses=PROBLEM_RESPONSES
)


Workspace = Annotated[str | None, Query(max_length=64)]
FlowFilter = Annotated[uuid.UUID | None, Query(alias="flow")]
NodeFilter = Annotated[str | None, Query(alias="node", max_length=128)]


def _iso_8601_only(value: object) -> object:
    # pydantic reads a bare number as seconds since the epoch; the document promises (and a
    # caller means) an ISO 8601 date-time, so `until=0.5` is a mistake to report, not 1970.
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("send an ISO 8601 date-time such as 2026-11-21T05:00:00Z, not a number")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601_only)]
Since = Annotated[IsoDateTime | None, Query(description="Stored at or after (ISO 8601)")]
Until = Annotated[IsoDateTime | None, Query(description="Stored before (ISO 8601)")]


async def filters(
    principal: CurrentPrincipal,
    workspace: Workspace = None,
    flow: FlowFilter = None,
    node: NodeFilter = None,
    since: Since = None,
    until: Until = None,
) -> unprocessed.Filter:
    """The list/bulk filters; people must name one of their workspaces."""
    privileged = principal.is_operator or "service" in principal.roles
    if not privileged and (workspace is None or not principal.can_access_workspace(workspace)):
        raise Forbidden("Name one of your workspaces with ?workspace=.")
    return unprocessed.Filter(
        workspace=workspace, flow_id=flow, node_id=node, since=since, until=until
    )


Filters = Annotated[unprocessed.Filter, Depends(filters)]


def _out(item: UnprocessedMessage) -> UnprocessedOut:
    return UnprocessedOut.model_validate(item, from_attributes=True)


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except ValueError as exc:
        raise BadRequest("The cursor is not one this API gave out.", slug="invalid-cursor") from exc


async def _visible(
    session: DbSession, principal: Principal, message_id: uuid.UUID
) -> UnprocessedMessage:
    item = await unprocessed.get(session, message_id)
    if not (
        principal.is_operator
        or "service" in principal.roles
        or principal.can_access_workspace(item.workspace)
    ):
        raise NotFound(f"There is no unprocessed message {message_id}.")
    return item


@router.get("", response_model=UnprocessedPage)
async def list_unprocessed(
    session: DbSession,
    context: Context,
    where: Filters,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> UnprocessedPage:
    """Messages that failed for good, oldest first, filtered by workspace, flow, node and time."""
    size = limit or context.settings.default_page_size
    items = await unprocessed.list_page(session, where, limit=size, after=_after(cursor))
    page = items[:size]
    return UnprocessedPage(
        items=[_out(item) for item in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if len(items) > size else None,
    )


@router.post("/retry", status_code=status.HTTP_202_ACCEPTED, response_model=BulkResult)
async def retry_matching(
    session: DbSession,
    context: Context,
    where: Filters,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> BulkResult:
    """Retry every unprocessed message matching the filters (at most ``limit``)."""
    ids = await unprocessed.retry_matching(session, context.bus, where, limit)
    return BulkResult(count=len(ids), ids=list(ids))


@router.get("/{message_id}", response_model=UnprocessedOut)
async def get_unprocessed(
    message_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> UnprocessedOut:
    return _out(await _visible(session, principal, message_id))


@router.delete("/{message_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_unprocessed(
    message_id: uuid.UUID, session: DbSession, principal: CurrentPrincipal
) -> Response:
    await unprocessed.delete_one(session, (await _visible(session, principal, message_id)).id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{message_id}", status_code=status.HTTP_202_ACCEPTED, response_model=BulkResult)
async def retry_unprocessed(
    message_id: uuid.UUID,
    session: DbSession,
    principal: CurrentPrincipal,
    context: Context,
    body: Annotated[RetryBody | None, Body()] = None,
) -> BulkResult:
    """Put the message back into its flow at the failed node, optionally with an edited payload."""
    item = await _visible(session, principal, message_id)
    if body is not None and "payload" in body.model_fields_set:
        await unprocessed.retry(session, context.bus, item, body.payload)
    else:
        await unprocessed.retry(session, context.bus, item)
    return BulkResult(count=1, ids=[message_id])


@router.delete("", response_model=BulkResult)
async def delete_matching(
    session: DbSession,
    principal: CurrentPrincipal,
    where: Filters,
) -> BulkResult:
    """Delete every unprocessed message matching the filters."""
    if where == unprocessed.Filter() and not principal.is_operator:
        raise Forbidden("Only operators may delete without a filter.")
    return BulkResult(count=await unprocessed.delete_matching(session, where))
