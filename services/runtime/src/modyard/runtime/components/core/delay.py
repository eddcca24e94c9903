"""``core.delay``: sends the message on after a wait.

Properties: ``seconds`` — 1 to 86400 (a day). The component returns a ``Delay``: the engine parks
the message on its delay queues (nothing sleeps in a consumer) and sends the payload, unchanged,
on ``out`` when the time is up.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from modyard.runtime.components.base import Delay, ExecutionContext
from modyard.runtime.components.core._shared import JSON_SCHEMA_DIALECT, CoreComponent

MIN_SECONDS: Final = 1
MAX_SECONDS: Final = 86400


class DelayComponent(CoreComponent):
    name: ClassVar[str] = "core.delay"
    properties_schema: ClassVar[dict[str, Any]] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {
            "seconds": {"type": "number", "minimum": MIN_SECONDS, "maximum": MAX_SECONDS}
        },
        "required": ["seconds"],
        "additionalProperties": False,
    }
    out_ports: ClassVar[tuple[str, ...]] = ("out",)

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Delay:
        seconds = self.properties(context)["seconds"]
        return Delay(float(seconds), {"out": [payload]})
