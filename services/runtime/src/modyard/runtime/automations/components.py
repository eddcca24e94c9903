"""Automations as flow components: a flow node ``<instance>.<automation>`` whose component has
the ``automation`` executor (the prismeai format makes one per public automation) runs the
instance's automation here.

The node's properties are its arguments (templates over the flow's scope, rendered first, then
checked against the automation's ``arguments``); the message is its ``payload`` and ``body``; the
output goes out on ``out``. A failing automation is a failure that is not retried (the same
message would fail the same way), except when the instance is not (yet) known to the runtime.
"""

from __future__ import annotations

from typing import Any

from modyard.common.errors import Problem
from modyard.common.templates import TemplateError, render
from modyard.runtime.automations.service import AutomationService, Target
from modyard.runtime.components.base import ComponentError, ExecutionContext, Outputs
from modyard.runtime.components.core._shared import scope_for
from modyard.runtime.failures import KIND_VALIDATION

#: Set by the runtime's start-up (``wiring``); the worker reaches automations through it.
service: AutomationService | None = None


async def run_automation_node(
    context: ExecutionContext, installation: str, automation: str, payload: Any
) -> Outputs:
    if service is None:
        raise ComponentError("automations are not started in this runtime", retryable=True)
    root = await service.programs.get(context.workspace)
    program = root.instances.get(installation)
    found = program.automations.get(automation) if program is not None else None
    if program is None or found is None:
        # The installer's event may not have reached the runtime yet.
        raise ComponentError(
            f"app instance {installation!r} has no automation {automation!r} yet",
            retryable=True,
        )
    if found.private:
        raise ComponentError(f"automation {automation!r} is private to its app", retryable=False)
    try:
        arguments = render(context.properties, scope_for(context, payload))
    except TemplateError as exc:
        raise ComponentError(
            str(exc), retryable=False, details={"kind": KIND_VALIDATION, "pointer": exc.pointer}
        ) from None
    async with service.database.transaction() as session:
        try:
            result = await service.run(
                session,
                context.workspace,
                Target(program, found, root),
                arguments=arguments if isinstance(arguments, dict) else {},
                payload=payload,
                body=payload,
                trigger={"type": "flow", "flow": context.flow_id, "node": context.node_id},
                correlation_id=context.correlation_id,
            )
        except Problem as exc:
            raise ComponentError(
                exc.detail, retryable=False, details={"kind": KIND_VALIDATION}
            ) from None
    return {"out": [result.output]}
