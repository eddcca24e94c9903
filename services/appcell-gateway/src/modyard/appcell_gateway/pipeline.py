"""The request pipeline, the same for HTTP and AMQP ingress:

find the cell (403 unless the caller's workspace owns it) and the plugin action → enforce its
security → compile the payload from the action's AppCell template and the request's ``data``, if
it has one → validate the payload (422, every error as a JSON pointer; field by field for a
compiled one) → read the installation's settings → send ``{action, resource, payload, settings}``
to the cell and wait (504 on timeout) → read the reply (the SDK's ``{result}``/``{error}`` or
AppCell's ``{status, result|detail}``) and validate the result (502 naming the violation) → render
the postpayload → ``{status, result, postpayload, for-update?}``. See docs/gateway.md.

Every step is logged (DEBUG) with the request's correlation id and every request ends with one
INFO line and one row in the request log, whatever its outcome.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import structlog

from modyard.appcell_gateway import postpayload, security
from modyard.appcell_gateway.cells.store import CellCache, Execution, LiveCell
from modyard.appcell_gateway.dispatch import Dispatcher
from modyard.appcell_gateway.problems import (
    ActionNotFound,
    CellFailed,
    CellNotFound,
    InvalidCellResult,
    InvalidPayload,
)
from modyard.appcell_gateway.request_log.service import RequestLog
from modyard.appcell_gateway.upstream import InstallerClient, UpstreamMissing
from modyard.common.auth import Principal
from modyard.common.errors import InvalidParam, Problem
from modyard.common.json_pointer import escape_token
from modyard.common.observability import tracing
from modyard.common.observability.flow_metrics import CellRequestTimer
from modyard.common.templates import TemplateError
from modyard.modules.formats import appcell_payload as payload_template

log = structlog.get_logger(__name__)
# structlog runs its processors before the level is checked: on the hot path, ask first.
_level = logging.getLogger(__name__)


# A request's id for the cell, unique without a system call each (uuid4 reads the kernel's random
# source every time, ~2.5 µs on the action call's path): 64 random bits per process, then a count.
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count()


def _unique_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):016x}"


@dataclass(frozen=True)
class CellRequest:
    cell: str
    plugin: str
    action: str
    payload: Any
    customer_product_id: str | None
    principal: Principal
    ingress: str
    correlation_id: str
    #: Where the payload sits in the caller's message, for error pointers.
    payload_pointer: str = "/body/payload"
    #: The data an AppCell payload template is compiled from (Billia's ``product``, ``order``,
    #: ``customer`` …), as the caller sends it.
    data: Any = None
    #: The caller's own id for this request (an AMQP message's ``message_id``, an HTTP
    #: ``Idempotency-Key``): the same request sent again reaches the cell with the same request
    #: ids, and the cell answers it from its replay memory instead of running the action twice.
    idempotency_key: str | None = None

    def request_id(self, execution: int) -> str:
        """The id the cell sees for one execution: unique, or stable for an idempotency key
        (scoped by the caller, so that two callers' keys never meet)."""
        if self.idempotency_key is None:
            return _unique_id()
        scoped = f"{self.principal.subject}\n{self.cell}\n{self.idempotency_key}\n{execution}"
        return hashlib.sha256(scoped.encode()).hexdigest()[:32]


class Pipeline:
    def __init__(
        self,
        cells: CellCache,
        installer: InstallerClient,
        dispatcher: Dispatcher,
        requests: RequestLog,
        *,
        timeout_seconds: float,
    ) -> None:
        self._cells = cells
        self._installer = installer
        self._dispatcher = dispatcher
        self._requests = requests
        self._timeout = timeout_seconds

    async def handle(self, request: CellRequest) -> dict[str, Any]:
        started = time.perf_counter()
        steps = _Steps(request) if _level.isEnabledFor(logging.DEBUG) else None
        live: LiveCell | None = None
        execution: Execution | None = None
        try:
            live = await self._cells.get(request.cell)
            # Before the plugin lookup, so another workspace cannot even learn the actions.
            security.enforce_workspace(request.principal, live.workspace, request.cell)
            executions = self._executions(live, request)
            answer: dict[str, Any] = {}
            for execution in executions:
                if steps:
                    steps("action_found", cell=live.name, resource=execution.resource)
                security.enforce(execution.security, request.principal, request.customer_product_id)
                if steps:
                    steps("security_passed", security=execution.security)
            for index, execution in enumerate(executions):
                answer = await self._execute(live, execution, request, index, steps)
        except Problem as problem:
            self._finish(
                request, live, execution, started, problem.slug, problem.status, problem.detail
            )
            raise
        self._finish(request, live, execution, started, "success", 200, None)
        return answer

    def _executions(self, live: LiveCell, request: CellRequest) -> list[Execution]:
        actions = live.plugins.get(request.plugin)
        if actions is None:
            raise ActionNotFound(
                f"Cell {live.name!r} has no plugin {request.plugin!r}; it has "
                f"{', '.join(sorted(live.plugins)) or 'none'}.",
            )
        executions = actions.get(request.action)
        if not executions:
            raise ActionNotFound(
                f"Plugin {request.plugin!r} has no action {request.action!r}; it has "
                f"{', '.join(sorted(actions))}.",
            )
        return executions

    async def _execute(
        self,
        live: LiveCell,
        execution: Execution,
        request: CellRequest,
        index: int,
        steps: _Steps | None,
    ) -> dict[str, Any]:
        payload = request.payload
        if execution.payload_template is not None:
            payload = self._compiled_payload(execution, request)
        if execution.payload is not None:
            violations = execution.payload.violations(
                payload, fields_only=execution.payload_template is not None
            )
            if violations:
                errors = [
                    InvalidParam(pointer=request.payload_pointer + v.pointer, detail=v.message)
                    for v in violations
                ]
                raise InvalidPayload(
                    f"Fix the payload fields named in 'errors' for {execution.resource}."
                    f"{execution.action}: " + "; ".join(e.pointer for e in errors) + ".",
                    errors=errors,
                )
        if steps:
            steps("payload_valid")
        try:
            settings = await self._installer.effective_config(
                live.installation_id, live.workspace, live.slug
            )
        except UpstreamMissing as exc:
            raise CellNotFound(f"{exc}; the cell is being removed.") from exc
        if steps:
            steps("settings_read")
        # The cell's redelivery policy and vendor idempotency keys use it.
        request_id = request.request_id(index)
        cell_action = f"{request.plugin}.{execution.action}"
        timer = CellRequestTimer(f"{live.workspace}:{live.slug}", cell_action)
        with (
            timer,
            tracing.span(
                f"call cell {cell_action}",
                attributes={
                    tracing.WORKSPACE: live.workspace,
                    tracing.CELL: f"{live.workspace}:{live.slug}",
                    tracing.ACTION: cell_action,
                    tracing.INSTALLATION: str(live.installation_id),
                },
            ),
        ):
            reply = await self._call(live, execution, request, request_id, settings, payload)
        if steps:
            steps("cell_answered")
        result = self._result(reply, execution)
        if steps:
            steps("result_valid")
        rendered = (
            self._postpayload(execution, result) if execution.postpayload is not None else None
        )
        answer = {"status": "success", "result": result, "postpayload": rendered}
        if isinstance(reply, dict) and reply.get(FOR_UPDATE) is not None:
            # AppCell's cells may answer what Billia updates on the product (``{"option":
            # {...}}``) beside their result; it is passed on as it is.
            answer[FOR_UPDATE] = reply[FOR_UPDATE]
        return answer

    async def _call(
        self,
        live: LiveCell,
        execution: Execution,
        request: CellRequest,
        request_id: str,
        settings: Any,
        payload: Any,
    ) -> Any:
        return await self._dispatcher.call(
            live.queue,
            {
                "request_id": request_id,
                "correlation_id": request.correlation_id,
                "installation": str(live.installation_id),
                "plugin": request.plugin,
                "action": execution.action,
                "resource": execution.resource,
                "payload": payload,
                "settings": settings,
                "customer_product_id": request.customer_product_id,
            },
            request_id=request_id,
            user=live.user,
            timeout=self._timeout,
        )

    @staticmethod
    def _compiled_payload(execution: Execution, request: CellRequest) -> dict[str, Any]:
        """AppCell's payload: the action's template compiled over the request's ``data`` (and
        ``customer_product_id``); the fields the caller sends in ``payload`` are taken as they are
        instead of their placeholders."""
        template = execution.payload_template or {}
        given = request.payload
        data_pointer = request.payload_pointer.removesuffix("/payload") + "/data"
        if given is not None and not isinstance(given, dict):
            raise InvalidPayload(
                f"{execution.resource}.{execution.action} compiles its payload from a template: "
                "send its fields as an object in 'payload', or the data in 'data'.",
                errors=[InvalidParam(pointer=request.payload_pointer, detail="must be an object")],
            )
        if request.data is not None and not isinstance(request.data, dict):
            raise InvalidPayload(
                "'data' must be an object (the product, order, customer … the template reads).",
                errors=[InvalidParam(pointer=data_pointer, detail="must be an object")],
            )
        given = given or {}
        scope = dict(request.data or {})
        if request.customer_product_id is not None:
            scope.setdefault("customer_product_id", request.customer_product_id)
        try:
            rendered = payload_template.render(
                {key: value for key, value in template.items() if key not in given}, scope
            )
        except payload_template.TemplateProblem as exc:
            raise InvalidCellResult(
                f"The payload template of {execution.resource}.{execution.action} cannot be "
                f"compiled: {exc}. Its publisher must fix the template.",
            ) from None
        if rendered.missing:
            errors = [
                InvalidParam(
                    pointer=data_pointer + _data_pointer(missing.path),
                    detail=f"is read by the payload template for {missing.pointer}; send it in "
                    f"data, or send the field {missing.pointer.split('/')[1]!r} in payload",
                )
                for missing in rendered.missing
            ]
            raise InvalidPayload(
                f"The payload of {execution.resource}.{execution.action} is compiled from its "
                "template, which reads data the request lacks: "
                + ", ".join(e.pointer for e in errors)
                + ".",
                errors=errors,
            )
        compiled = dict(rendered.value)
        compiled.update(given)
        return compiled

    def _postpayload(self, execution: Execution, result: Any) -> Any:
        try:
            return postpayload.render(execution.postpayload, result)
        except TemplateError as exc:
            raise InvalidCellResult(
                f"The cell's postpayload for {execution.resource}.{execution.action} cannot be "
                f"rendered: {exc}. Its publisher must fix the postpayload document.",
                errors=[InvalidParam(pointer="/postpayload" + exc.pointer, detail=exc.reason)],
            ) from None

    def _result(self, reply: Any, execution: Execution) -> Any:
        if isinstance(reply, dict) and "status" in reply and "error" not in reply:
            reply = _appcell_reply(reply)
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise InvalidCellResult(
                "The cell answered neither {'result': …} nor {'error': …} (nor AppCell's "
                "{'status': 200, 'result': …} or {'status': 4xx/5xx, 'detail': …}).",
                errors=[InvalidParam(pointer="", detail="expected an object with 'result'")],
            )
        if "error" in reply:
            error = reply["error"] if isinstance(reply["error"], dict) else {}
            status = error.get("status")
            problem = CellFailed(
                f"The cell reported: {error.get('message') or 'an unspecified error'}.",
                retryable=bool(error.get("retryable", False)),
                cell_status=status,
            )
            if isinstance(status, int) and 400 <= status < 500:
                problem.status = status
            raise problem
        result = reply["result"]
        if execution.result is not None:
            violations = execution.result.violations(result)
            if violations:
                raise InvalidCellResult(
                    f"The cell's result for {execution.resource}.{execution.action} does not "
                    "match its $result schema: "
                    + "; ".join(f"{v.pointer or '/'}: {v.message}" for v in violations)
                    + ".",
                    errors=[
                        InvalidParam(pointer="/result" + v.pointer, detail=v.message)
                        for v in violations
                    ],
                )
        return result

    def _finish(
        self,
        request: CellRequest,
        live: LiveCell | None,
        execution: Execution | None,
        started: float,
        outcome: str,
        status: int,
        detail: str | None,
    ) -> None:
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if _level.isEnabledFor(logging.INFO):
            self._log_outcome(request, live, outcome, status, latency_ms)
        self._requests.record(
            correlation_id=request.correlation_id,
            installation_id=live.installation_id if live else None,
            cell=live.name if live else request.cell[:255],
            plugin=request.plugin[:255],
            action=request.action[:255],
            resource=execution.resource if execution else None,
            ingress=request.ingress,
            caller=request.principal.subject[:255],
            customer_product_id=request.customer_product_id,
            outcome=outcome,
            status_code=status,
            latency_ms=latency_ms,
            detail=detail,
        )

    @staticmethod
    def _log_outcome(
        request: CellRequest, live: LiveCell | None, outcome: str, status: int, latency_ms: float
    ) -> None:
        log.info(
            "cell_request",
            correlation_id=request.correlation_id,
            ingress=request.ingress,
            cell=live.name if live else request.cell,
            plugin=request.plugin,
            action=request.action,
            outcome=outcome,
            status=status,
            latency_ms=latency_ms,
        )


#: What an AppCell cell may answer beside its result: data Billia writes to the product.
FOR_UPDATE = "for-update"


def _appcell_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """AppCell's own reply body (MicroCell's ProcessCommand: ``{"status": 200, "result": …,
    "for-update"?: …}``, or ``{"status": <code>, "detail": …, "title": …}`` on failure) in the
    SDK's shape: a 2xx with its ``result``, a 4xx/5xx as ``{"error": …}``, anything else as
    unreadable (the caller's 502 says which)."""
    status = reply["status"]
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status < 600:
        return {"unreadable": True}
    if 200 <= status < 300:
        return reply if "result" in reply else {"unreadable": True}
    if status < 400:
        return {"unreadable": True}
    detail, title = reply.get("detail"), reply.get("title")
    message = detail if isinstance(detail, str) and detail else title
    return {
        "error": {
            "message": message if isinstance(message, str) and message else None,
            "status": status,
            "retryable": status in (429, 502, 503, 504),
        }
    }


def _data_pointer(path: str) -> str:
    """``product.option.domain`` / ``order.lines[0].sku`` as a JSON pointer under ``data``."""
    steps = path.replace("[", ".").replace("]", "").split(".")
    return "".join("/" + escape_token(step) for step in steps)


class _Steps:
    """DEBUG lines for each step of one request, with its correlation id."""

    def __init__(self, request: CellRequest) -> None:
        self._log = log.bind(correlation_id=request.correlation_id, ingress=request.ingress)

    def __call__(self, step: str, **fields: Any) -> None:
        self._log.debug(step, **fields)
