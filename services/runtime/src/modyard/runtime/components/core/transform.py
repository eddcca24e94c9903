"""``core.transform``: builds a new message from a templated mapping.

Properties: ``mapping`` — any JSON; its strings are templates (see
:mod:`modyard.common.templates`) over ``payload``, ``properties``, ``config``, ``flow`` and
``message``. The rendered mapping goes out on ``out``: ``{"total": "{{ payload.amount }}"}`` keeps
the amount's type, ``"Order {{ payload.id }}"`` is text.
"""

from __future__ import annotations

from typing import Any, ClassVar

from modyard.runtime.components.base import ExecutionContext, Outputs
from modyard.runtime.components.core._shared import JSON_SCHEMA_DIALECT, CoreComponent, scope_for


class TransformComponent(CoreComponent):
    name: ClassVar[str] = "core.transform"
    properties_schema: ClassVar[dict[str, Any]] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {
            "mapping": {"description": "JSON whose strings may hold {{ expression }} placeholders"}
        },
        "required": ["mapping"],
        "additionalProperties": False,
    }
    out_ports: ClassVar[tuple[str, ...]] = ("out",)
    template_properties: ClassVar[tuple[str, ...]] = ("mapping",)

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs:
        properties = self.properties(context)
        mapping = self.render(properties["mapping"], scope_for(context, payload), "/mapping")
        return {"out": [mapping]}
