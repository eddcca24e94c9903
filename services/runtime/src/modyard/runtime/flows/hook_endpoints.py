"""The /v1/hooks routes: requests that fire flows' webhook triggers."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy import select

from modyard.common.body_limit import body_limit
from modyard.common.db.session import DbSession
from modyard.common.errors import (
    PROBLEM_RESPONSES,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from modyard.common.request_context import current_correlation_id
from modyard.runtime.context import SLOT
from modyard.runtime.engine.dispatch import send
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.flows import js_lifecycle
from modyard.runtime.flows.triggers import DEFAULT_WEBHOOK_BODY_BYTES
from modyard.runtime.models import Flow
from modyard.runtime.schemas import HookAccepted

router = APIRouter(prefix="/v1/hooks", tags=["hooks"], responses=PROBLEM_RESPONSES)


WorkspaceSlug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
NodeId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


_ANSWERED: dict[int | str, dict[str, Any]] = {
    200: {"description": "What the js webhook component answered"}
}


@router.get("/{ws}/{flow_id}/{node_id}", operation_id="hook_get", responses=_ANSWERED)
@router.put("/{ws}/{flow_id}/{node_id}", operation_id="hook_put", responses=_ANSWERED)
@router.patch("/{ws}/{flow_id}/{node_id}", operation_id="hook_patch", responses=_ANSWERED)
@router.delete("/{ws}/{flow_id}/{node_id}", operation_id="hook_delete", responses=_ANSWERED)
@body_limit(lambda _settings: 10 * 1024 * 1024)
async def receive_other_methods(
    request: Request,
    ws: WorkspaceSlug,
    flow_id: uuid.UUID,
    node_id: NodeId,
    session: DbSession,
) -> Response:
    """A js webhook component (``webhook: true``) takes any method; ``core.webhook`` only POST."""
    answer = await receive(request, ws, flow_id, node_id, session)
    if not isinstance(answer, Response):
        raise NotFound("There is no webhook component at this address.")  # pragma: no cover
    return answer


@router.post(
    "/{ws}/{flow_id}/{node_id}", status_code=status.HTTP_202_ACCEPTED, response_model=HookAccepted
)
# The largest ``max_body_bytes`` a webhook node may declare (flows/triggers.py); the node's own,
# usually smaller, cap is enforced below while the body streams in.
@body_limit(lambda _settings: 10 * 1024 * 1024)
async def receive(
    request: Request,
    ws: WorkspaceSlug,
    flow_id: uuid.UUID,
    node_id: NodeId,
    session: DbSession,
) -> HookAccepted | Response:
    """A webhook trigger: the JSON body becomes a message of the flow (202 once it is queued).
    A js webhook component's node (flows/js_lifecycle.py) answers with what the component gave
    ``context.response`` (202 with the message id when it gave nothing).

    The flow id is the secret here, as with Appmixer's webhook URLs: no bearer token is needed.
    """
    # Read off the app, not through the ``Context`` dependency: the busiest route of the runtime
    # resolves one dependency fewer per request (docs/runtime.md).
    context = SLOT.of(request.app)
    # Only the columns the answer needs, as a plain row: the ORM's identity map and a JSONB
    # decode of the definition cost more than the rest of the route (docs/runtime.md). The
    # status is read on every request, so a stop is refused at once; the definition is read and
    # validated only when its revision is new to this process (engine/flow_cache.py).
    # Reads only, so no transaction: BEGIN and COMMIT were two of the route's three round trips
    # to PostgreSQL. The connection goes back to the pool with its isolation level reset.
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    row = (
        await session.execute(
            select(Flow.workspace, Flow.name, Flow.status, Flow.revision).where(Flow.id == flow_id)
        )
    ).one_or_none()
    definition = None
    if row is not None and row.workspace == ws:
        definition = context.flows.cached_definition(flow_id, row.revision)
        if definition is None:
            fresh = (
                await session.execute(
                    select(Flow.revision, Flow.definition).where(Flow.id == flow_id)
                )
            ).one_or_none()
            if fresh is not None:
                definition = context.flows.definition(flow_id, fresh.revision, fresh.definition)
    node = definition.nodes.get(node_id) if definition is not None else None
    flow = None
    component = None
    if row is not None and node is not None and node.component != "core.webhook":
        # A js webhook component (rare next to core.webhook): its helpers take the whole flow.
        flow = await session.get(Flow, flow_id)
        if flow is not None:
            component = await js_lifecycle.webhook_component(session, flow, node_id, node.component)
    if row is None or node is None or (node.component != "core.webhook" and component is None):
        raise NotFound("There is no webhook trigger at this address.")
    if component is None and request.method != "POST":
        raise NotFound("There is no webhook component at this address (core.webhook takes POST).")
    if row.status != "running":
        raise Conflict(
            f"Flow {row.name!r} is stopped; start it to receive webhooks.", slug="flow-not-running"
        )
    # The read is over: end its transaction before anything is queued. Ended after, a database
    # going away in between turned a queued message into a 503, and the caller's retry ran the
    # flow twice (tests/test_database_restart.py).
    await session.commit()
    limit = int(node.properties.get("max_body_bytes", DEFAULT_WEBHOOK_BODY_BYTES))
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(
                f"This webhook takes at most {limit} bytes.", slug="webhook-body-too-large"
            )
    if component is not None:
        assert flow is not None  # read with the component
        content = js_lifecycle.webhook_content(
            request.method, request.headers, request.url.query, bytes(body)
        )
        return await js_lifecycle.answer_webhook(
            context, flow, node_id, node.properties, component, content, current_correlation_id()
        )
    try:
        payload = json.loads(body) if body else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"The body is not JSON ({exc}).", slug="invalid-json") from exc
    message = WorkMessage(
        workspace=ws,
        flow_id=str(flow_id),
        node_id=node_id,
        port="out",
        payload=payload,
        correlation_id=current_correlation_id(),
    )
    # The trigger's output goes straight to the nodes it connects to (the trigger itself ran here).
    assert definition is not None  # node was found in it
    for index, connection in definition.outgoing(node_id, "out"):
        await send(
            context.bus,
            WorkMessage(
                message_id=message.child_id(index, 0),
                workspace=ws,
                flow_id=str(flow_id),
                node_id=connection.target,
                port=connection.target_port,
                payload=payload,
                correlation_id=message.correlation_id,
            ),
        )
    return HookAccepted(message_id=message.message_id)
