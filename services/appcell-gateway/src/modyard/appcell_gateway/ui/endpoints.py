"""``/v1/ui``: the UI Controller (ui.json ``backendModules``) and the frontend slots."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from modyard.appcell_gateway.cells import queries
from modyard.appcell_gateway.dependencies import Caller, Context, json_response
from modyard.appcell_gateway.pipeline import CellRequest
from modyard.appcell_gateway.schemas import ActionAnswer, SlotBundles
from modyard.common.db.session import DbSession
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.common.request_context import current_correlation_id, current_request_id

router = APIRouter(prefix="/v1/ui", tags=["ui"], responses=PROBLEM_RESPONSES)

Name = Annotated[str, Path(min_length=1, max_length=255)]


@router.get("/slots/{slot}", response_model=SlotBundles)
async def slot(
    slot: Name,
    session: DbSession,
    principal: Caller,
    product: Annotated[str | None, Query(max_length=255)] = None,
    workspace: Annotated[str | None, Query(max_length=64)] = None,
) -> SlotBundles:
    """The frontend bundles to load into ``slot``, their ``deps`` first, kept by ``slotFilters``."""
    return await queries.slot_bundles(session, principal, slot, product, workspace)


async def _controller(
    url_base: str,
    action: str,
    customer_product_id: str | None,
    installation: str | None,
    payload: Any,
    session: DbSession,
    context: Context,
    principal: Caller,
) -> Response:
    cell, plugin = await queries.controller_target(
        session, principal, url_base, action, installation
    )
    answer = await context.pipeline.handle(
        CellRequest(
            cell=cell,
            plugin=plugin,
            action=action,
            payload=payload,
            customer_product_id=customer_product_id,
            principal=principal,
            ingress="ui",
            correlation_id=current_correlation_id() or current_request_id() or "",
        )
    )
    return json_response(answer)


CustomerProduct = Annotated[
    str | None,
    Query(alias="customerProductId", max_length=255, description="The product the UI shows"),
]
Installation = Annotated[
    str | None,
    Query(max_length=255, description="Which installation, when several serve the urlBase"),
]


@router.get("/{url_base}/{action}", response_model=ActionAnswer)
async def controller_get(
    url_base: Name,
    action: Name,
    session: DbSession,
    context: Context,
    principal: Caller,
    customer_product_id: CustomerProduct = None,
    installation: Installation = None,
) -> Response:
    """The Controller: runs the cell's ``action`` for ``customerProductId`` (payload
    ``{"customer_product_id": …}``)."""
    payload = {"customer_product_id": customer_product_id} if customer_product_id else {}
    return await _controller(
        url_base, action, customer_product_id, installation, payload, session, context, principal
    )


@router.post("/{url_base}/{action}", response_model=ActionAnswer)
async def controller_post(
    url_base: Name,
    action: Name,
    session: DbSession,
    context: Context,
    principal: Caller,
    payload: Annotated[Any, Body(description="The action's payload")] = None,
    customer_product_id: CustomerProduct = None,
    installation: Installation = None,
) -> Response:
    """The Controller with a payload: runs the cell's ``action`` for ``customerProductId``."""
    return await _controller(
        url_base, action, customer_product_id, installation, payload, session, context, principal
    )
