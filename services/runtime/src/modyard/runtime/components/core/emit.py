"""``core.emit``: publishes a domain event and passes the message on.

Properties: ``type`` — a dotted name such as ``acme.order.created``, never under ``modyard.``
(the platform's events; see :mod:`modyard.runtime.flows.events` for who hears it); ``data`` — a template (see
:mod:`modyard.common.templates`), the payload itself when absent. The component calls the
context's ``emit(type, data)`` and sends the payload, unchanged, on ``out``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from modyard.runtime.components.base import ComponentError, ExecutionContext, Outputs
from modyard.runtime.components.core._shared import (
    JSON_SCHEMA_DIALECT,
    CoreComponent,
    missing_callback,
    scope_for,
)
from modyard.runtime.failures import KIND_VALIDATION
from modyard.runtime.flows.events import emit_problem

#: Two or more dot-separated words of letters, digits, ``_`` and ``-``.
EVENT_TYPE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+$"


class EmitComponent(CoreComponent):
    name: ClassVar[str] = "core.emit"
    properties_schema: ClassVar[dict[str, Any]] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {
            "type": {"type": "string", "maxLength": 200, "pattern": EVENT_TYPE_PATTERN},
            "data": {"description": "a template; the payload when absent"},
        },
        "required": ["type"],
        "additionalProperties": False,
    }
    out_ports: ClassVar[tuple[str, ...]] = ("out",)
    template_properties: ClassVar[tuple[str, ...]] = ("data",)

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs:
        properties = self.properties(context)
        if "data" in properties:
            data = self.render(properties["data"], scope_for(context, payload), "/data")
        else:
            data = payload
        refused = emit_problem(properties["type"])
        if refused:
            raise ComponentError(refused, retryable=False, details={"kind": KIND_VALIDATION})
        if context.emit is None:
            raise missing_callback("emit")
        await context.emit(properties["type"], data)
        return {"out": [payload]}
