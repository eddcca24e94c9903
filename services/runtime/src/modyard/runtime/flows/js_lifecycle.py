"""What ``js`` (Appmixer) components get beyond messages: ``start``/``stop`` with their flow, and
webhook components answering their caller.

- **start / stop.** Starting a flow calls each ``js`` node's ``start`` (where a component
  registers its webhook URL with the vendor, or, as Appmixer's Timer and Scheduler, sends its
  first message and sets its first ``context.setTimeout``: both go on once the start commits); one rejecting refuses the start
  with a 422 naming the node and the component's own error, after the nodes already started are
  stopped again. One that cannot run at all (the runner down, a module npm cannot install) is
  logged and does not keep the flow from starting: its messages report it, as before. Stopping a flow calls ``stop`` on each (best effort: a failure is logged, the
  flow stops anyway). A component that exports neither has nothing to do.
- **Webhook components** (``webhook: true``) are served at ``/v1/hooks/{ws}/{flow}/{node}`` (any
  method): the request becomes ``messages.webhook.content`` = ``{method, headers, query,
  data}``; the component's outputs go on to the flow, and what it gave ``context.response(body,
  status, headers)`` is the caller's answer. Without a ``response()``: ``202`` with the message
  id (as ``core.webhook``). Past ``MODYARD_RUNTIME_JS_WEBHOOK_TIMEOUT_SECONDS``: ``504``; a
  failing component: ``502`` naming its error (the caller may retry, as vendors do).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import JSONResponse, Response

from modyard.common.db.commit_hooks import after_commit
from modyard.common.errors import InvalidParam, ValidationFailed
from modyard.runtime import installed_components
from modyard.runtime.components.base import ComponentError
from modyard.runtime.context import RuntimeContext
from modyard.runtime.engine.dispatch import send
from modyard.runtime.engine.messages import WorkMessage
from modyard.runtime.executors import JsExecutor, LifecycleAnswer
from modyard.runtime.flows.definition import FlowDefinition
from modyard.runtime.models import Flow, InstalledComponent

log = structlog.get_logger(__name__)

#: Request headers never shown to a component (the platform's own credentials).
_HIDDEN_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
#: Response headers a component may not set (the server frames the answer).
_FRAMING_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "content-encoding"}
)


def _js(context: RuntimeContext) -> JsExecutor | None:
    return context.executors.js if context.executors is not None else None


async def _js_nodes(
    session: AsyncSession, flow: Flow
) -> list[tuple[str, dict[str, Any], InstalledComponent]]:
    nodes = []
    for node_id, node in FlowDefinition.model_validate(flow.definition).nodes.items():
        try:
            installed = await installed_components.find(session, flow.workspace, node.component)
        except installed_components.AmbiguousComponent:
            continue  # validation refused the flow already
        if installed is not None and installed.present and installed.executor == "js":
            nodes.append((node_id, node.properties, installed))
    return nodes


def _request(
    flow: Flow,
    node_id: str,
    properties: Mapping[str, Any],
    installed: InstalledComponent,
    port: str,
    payload: Any,
    config: dict[str, Any],
) -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex,
        "workspace": flow.workspace,
        "flow_id": str(flow.id),
        "node_id": node_id,
        "installation": installed.slug,
        "module": installed.module,
        "version": installed.version,
        "component": installed.component,
        "port": port,
        "payload": payload,
        "properties": dict(properties),
        "config": config,
        # start() registers with the vendor as the node's account (an id: the runner reads it).
        "account": ((flow.definition or {}).get("nodes") or {}).get(node_id, {}).get("account"),
    }


async def _lifecycle(
    context: RuntimeContext,
    flow: Flow,
    node_id: str,
    properties: Mapping[str, Any],
    installed: InstalledComponent,
    method: str,
) -> tuple[dict[str, Any], LifecycleAnswer]:
    """The request and the component's answer to ``method`` (``refused`` None: it resolved).
    Raises :class:`ComponentError` when it could not run at all."""
    js = _js(context)
    if js is None:
        return {}, LifecycleAnswer(None)
    config = await context.installer.effective_config(flow.workspace, installed.slug)
    request = _request(flow, node_id, properties, installed, method, None, config)
    return request, await js.lifecycle(installed, request)


#: Deliveries of start() outputs and timers waiting for their flow's commit (kept referenced).
_DELIVERIES: set[asyncio.Task[None]] = set()


def _deliver_after_commit(
    session: AsyncSession,
    context: RuntimeContext,
    flow: Flow,
    answers: list[tuple[dict[str, Any], LifecycleAnswer]],
) -> None:
    """What the nodes' ``start()`` sent and set, once the start commits (the worker takes a
    message only for a running flow; a refused start rolls back and delivers nothing)."""
    js = _js(context)
    pending = [(request, answer) for request, answer in answers if answer.outputs or answer.timers]
    if js is None or not pending:
        return
    definition = FlowDefinition.model_validate(flow.definition)

    async def deliver() -> None:
        for request, answer in pending:
            try:
                await js.deliver(request, answer, definition)
            except Exception as exc:  # the broker away: logged, as a lost webhook would be
                log.warning(
                    "js_component_start_outputs_lost",
                    flow_id=str(flow.id),
                    node=request.get("node_id"),
                    error=str(exc)[:300],
                )

    def committed() -> None:
        task = asyncio.get_running_loop().create_task(deliver())
        _DELIVERIES.add(task)
        task.add_done_callback(_DELIVERIES.discard)

    after_commit(session, committed)


async def start_components(session: AsyncSession, context: RuntimeContext, flow: Flow) -> None:
    """``start`` of every js node; the first that rejects stops those started and refuses the
    start (422). One that cannot run at all (the runner down, its module not installable here)
    does not keep the flow from starting: it is logged, and its messages report it as before.
    What the started nodes sent and set in ``start()`` goes on once the start commits."""
    started: list[tuple[str, dict[str, Any], InstalledComponent]] = []
    answers: list[tuple[dict[str, Any], LifecycleAnswer]] = []
    for node_id, properties, installed in await _js_nodes(session, flow):
        try:
            request, answer = await _lifecycle(
                context, flow, node_id, properties, installed, "start"
            )
        except ComponentError as exc:
            log.warning(
                "js_component_start_not_run",
                flow_id=str(flow.id),
                node=node_id,
                component=installed.component,
                error=exc.message[:500],
            )
            continue
        refused = answer.refused
        if refused is not None:
            for done in reversed(started):
                await _stop_quietly(context, flow, *done)
            problem = ValidationFailed(
                f"The flow cannot start: node {node_id!r} ({installed.component}) failed in "
                f"start(): {refused}. Fix what it names (often the installation's "
                "credentials or the node's properties) and start again.",
                slug="component-start-failed",
            )
            problem.errors = [
                InvalidParam(
                    pointer=f"/definition/nodes/{node_id}",
                    detail=f"start() failed: {refused}",
                )
            ]
            raise problem
        started.append((node_id, properties, installed))
        answers.append((request, answer))
    _deliver_after_commit(session, context, flow, answers)


async def _stop_quietly(
    context: RuntimeContext,
    flow: Flow,
    node_id: str,
    properties: Mapping[str, Any],
    installed: InstalledComponent,
) -> None:
    try:
        _request_sent, answer = await _lifecycle(
            context, flow, node_id, properties, installed, "stop"
        )
        refused = answer.refused
    except ComponentError as exc:
        refused = exc.message
    if refused is not None:
        log.warning(
            "js_component_stop_failed",
            flow_id=str(flow.id),
            node=node_id,
            component=installed.component,
            error=refused[:500],
        )


async def stop_components(session: AsyncSession, context: RuntimeContext, flow: Flow) -> None:
    """``stop`` of every js node (failures logged: the flow stops anyway)."""
    for node_id, properties, installed in await _js_nodes(session, flow):
        await _stop_quietly(context, flow, node_id, properties, installed)


# -- webhook components ---------------------------------------------------------------------


async def webhook_component(
    session: AsyncSession, flow: Flow, node_id: str, component: str
) -> InstalledComponent | None:
    """The js webhook component a node names, if it is one."""
    try:
        installed = await installed_components.find(session, flow.workspace, component)
    except installed_components.AmbiguousComponent:
        return None
    if installed is None or not installed.present or installed.executor != "js":
        return None
    return installed if installed.spec.get("webhook") else None


def webhook_content(
    method: str, headers: Mapping[str, str], query: str, body: bytes
) -> dict[str, Any]:
    """``messages.webhook.content``: JSON and form bodies parsed, anything else as text."""
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any = None
    if body:
        text = body.decode("utf-8", errors="replace")
        if kind.endswith("json") or kind.endswith("+json"):
            try:
                data = json.loads(text)
            except ValueError:
                data = text
        elif kind == "application/x-www-form-urlencoded":
            data = dict(parse_qsl(text, keep_blank_values=True))
        else:
            data = text
    return {
        "method": method,
        "headers": {k.lower(): v for k, v in headers.items() if k.lower() not in _HIDDEN_HEADERS},
        "query": dict(parse_qsl(query, keep_blank_values=True)),
        "data": data,
    }


def _problem(status: int, title: str, detail: str, slug: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": f"https://modyard.dev/problems/{slug}",
            "title": title,
            "status": status,
            "detail": detail,
        },
        status_code=status,
        media_type="application/problem+json",
    )


def _answer(response: dict[str, Any]) -> Response:
    status = response.get("status")
    status = status if isinstance(status, int) and 100 <= status < 600 else 200
    headers = {
        str(k): str(v)
        for k, v in (response.get("headers") or {}).items()
        if str(k).lower() not in _FRAMING_HEADERS
    }
    body = response.get("body")
    if isinstance(body, str):
        headers.setdefault("content-type", "text/plain; charset=utf-8")
        return Response(body, status_code=status, headers=headers)
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def answer_webhook(
    context: RuntimeContext,
    flow: Flow,
    node_id: str,
    properties: Mapping[str, Any],
    installed: InstalledComponent,
    content: dict[str, Any],
    correlation_id: str | None,
) -> Response:
    """Run the component for one request; its outputs go on, its ``response()`` answers."""
    js = _js(context)
    if js is None:
        return _problem(503, "Service Unavailable", "js components are not run here", "js-off")
    message = WorkMessage(
        workspace=flow.workspace,
        flow_id=str(flow.id),
        node_id=node_id,
        port="webhook",
        payload=content,
        correlation_id=correlation_id,
    )
    config = await context.installer.effective_config(flow.workspace, installed.slug)
    request = _request(flow, node_id, properties, installed, "webhook", content, config)
    request["message_id"] = message.message_id
    request["correlation_id"] = correlation_id
    try:
        async with asyncio.timeout(context.settings.js_webhook_timeout_seconds):
            outputs, response = await js.answer(installed, request)
    except TimeoutError:
        return _problem(
            504,
            "Gateway Timeout",
            f"The webhook component did not answer within "
            f"{context.settings.js_webhook_timeout_seconds} s.",
            "webhook-component-timeout",
        )
    except ComponentError as exc:
        log.warning(
            "js_webhook_failed", flow_id=str(flow.id), node=node_id, error=exc.message[:300]
        )
        return _problem(
            502,
            "Bad Gateway",
            f"The webhook component failed: {exc.message}",
            "webhook-component-failed",
        )
    definition = FlowDefinition.model_validate(flow.definition)
    for port, values in outputs.items():
        for index, connection in definition.outgoing(node_id, port):
            for position, payload in enumerate(values):
                await send(
                    context.bus,
                    WorkMessage(
                        message_id=message.child_id(index, position),
                        workspace=flow.workspace,
                        flow_id=str(flow.id),
                        node_id=connection.target,
                        port=connection.target_port,
                        payload=payload,
                        correlation_id=correlation_id,
                    ),
                )
    if response is None:
        return JSONResponse({"message_id": message.message_id}, status_code=202)
    return _answer(response)


#: Slingr listeners answer their callers the same way (modyard.runtime.listeners).
problem = _problem
render_response = _answer
