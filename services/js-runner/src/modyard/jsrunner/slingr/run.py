"""One Slingr call on its package version's child: a flow step (its return value is the
node's output on ``out``) or a listener (``webhookSync``: its return value answers the caller)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modyard.common.egress.policy import Allowance
from modyard.jsrunner.context_api import CallScope
from modyard.jsrunner.modules import ModuleVersion
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.sandbox import SandboxFailure, SandboxSpec
from modyard.jsrunner.slingr import calls


async def run(
    pool: ChildPool,
    module: ModuleVersion,
    spec: SandboxSpec,
    frame: dict[str, Any],
    scope: CallScope,
    request: dict[str, Any],
    *,
    allowance: Allowance | None,
    classify: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    slingr_scope = calls.scope_of(module, scope, request)
    try:
        child = await pool.child(spec)
        answer, _logs = await child.call(
            frame, slingr_scope, allowance=allowance, workspace=scope.workspace
        )
    except SandboxFailure as exc:
        return {"error": {"message": exc.message, "retryable": exc.retryable, "kind": "sandbox"}}
    if answer.get("t") == "done":
        outputs = answer.get("outputs")
        reply: dict[str, Any] = {"outputs": outputs if isinstance(outputs, dict) else {}}
        if isinstance(answer.get("response"), dict):
            reply["response"] = answer["response"]
        return reply
    error = answer.get("error")
    classified = classify(error if isinstance(error, dict) else {})
    if classified.get("kind") == "unknown":
        # A script's own TypeError or Error fails the same way on every try (Slingr retries
        # nothing either); connection failures and 5xx statuses stay retried.
        classified = {**classified, "retryable": False, "kind": "script"}
    return {"error": classified}
