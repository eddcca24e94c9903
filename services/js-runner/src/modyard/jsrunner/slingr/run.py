"""One Slingr call on its package version's child: a flow step (its return value is the
node's output on ``out``) or the package's HTTP listeners for one webhook request (a
``webhookSync`` listener's return value answers the caller)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modyard.common.egress.policy import Allowance
from modyard.jsrunner.context_api import CallScope
from modyard.jsrunner.modules import ModuleVersion
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.sandbox import SandboxFailure, SandboxSpec
from modyard.jsrunner.slingr import calls

#: The request port of a webhook for the package's listeners (the runtime's
#: ``/v1/listeners/{ws}/{installation}/{path}``), instead of a flow step's message.
LISTENER_PORT = "listener"
#: The request port of a dependent package's ``dependencies.<package>.functions`` call.
FUNCTION_PORT = "function"


async def handle(
    pool: ChildPool,
    module: ModuleVersion,
    spec: SandboxSpec,
    request: dict[str, Any],
    *,
    allowance: Allowance | None,
    classify: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    component_name = str(request.get("component") or "")
    port = str(request.get("port") or "in")
    scope = CallScope(
        workspace=str(request.get("workspace") or ""),
        flow_id=str(request.get("flow_id") or ""),
        node_id=str(request.get("node_id") or ""),
        module=module.name,
        component=component_name,
        message_id=str(request.get("message_id") or request.get("correlation_id") or ""),
    )
    if port == LISTENER_PORT:
        frame = calls.listener_frame(module, request)
    elif port == FUNCTION_PORT:
        frame = calls.function_frame(module, request)
    elif port in ("start", "stop"):
        return {"outputs": {}}  # flow steps have no start/stop: nothing to run
    else:
        component = module.components.get(component_name)
        if component is None:
            return {
                "error": {
                    "message": f"{module.name} {module.version} has no flow step "
                    f"{component_name!r}",
                    "retryable": False,
                }
            }
        frame = calls.step_frame(module, component, request)
    # A flow step's events go back with its answer: the runtime records them with the node's
    # success, through its outbox, at the message's event depth (as core.emit's).
    slingr_scope = calls.scope_of(
        module, scope, request, collect=frame["kind"] == "step" and bool(scope.flow_id)
    )
    try:
        child = await pool.child(spec)
        answer, logs = await child.call(
            frame, slingr_scope, allowance=allowance, workspace=scope.workspace
        )
    except SandboxFailure as exc:
        return {"error": {"message": exc.message, "retryable": exc.retryable, "kind": "sandbox"}}
    if answer.get("t") == "done":
        outputs = answer.get("outputs")
        reply: dict[str, Any] = {"outputs": outputs if isinstance(outputs, dict) else {}}
        if isinstance(answer.get("response"), dict):
            reply["response"] = answer["response"]
        if slingr_scope.emitted:
            reply["events"] = slingr_scope.emitted
        if logs and frame["kind"] == "step":
            # sys.logs lines go to the flow's log with the node's success (the runtime keeps
            # them in its node logs), besides the runner's own log.
            reply["logs"] = [{"source": "sys.logs", **line} for line in logs]
        return reply
    error = answer.get("error")
    classified = classify(error if isinstance(error, dict) else {})
    if classified.get("kind") == "unknown":
        # A script's own TypeError or Error fails the same way on every try (Slingr retries
        # nothing either); connection failures and 5xx statuses stay retried.
        classified = {**classified, "retryable": False, "kind": "script"}
    return {"error": classified}
