"""``core.log``: writes a line to the flow's log (a sink: it sends nothing on).

Properties: ``message`` — an optional template (see :mod:`modyard.common.templates`). The
component calls the context's ``log`` with the rendered message, or with the payload when there
is no ``message``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from modyard.runtime.components.base import ExecutionContext, Outputs
from modyard.runtime.components.core._shared import (
    JSON_SCHEMA_DIALECT,
    CoreComponent,
    missing_callback,
    scope_for,
)


class LogComponent(CoreComponent):
    name: ClassVar[str] = "core.log"
    properties_schema: ClassVar[dict[str, Any]] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {"message": {"description": "a template; the payload is logged when absent"}},
        "additionalProperties": False,
    }
    out_ports: ClassVar[tuple[str, ...]] = ()
    template_properties: ClassVar[tuple[str, ...]] = ("message",)

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs:
        properties = self.properties(context)
        if "message" in properties:
            entry = self.render(properties["message"], scope_for(context, payload), "/message")
        else:
            entry = payload
        if context.log is None:
            raise missing_callback("log")
        await context.log(entry)
        return {}
