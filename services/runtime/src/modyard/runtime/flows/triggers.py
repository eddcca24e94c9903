"""Core trigger components: they start messages instead of receiving them.

``core.webhook`` takes HTTP requests on ``POST /v1/hooks/{ws}/{flow}/{node}``; the body becomes the
message. ``core.schedule`` fires on a cron expression and ``core.event`` on a bus event type (both
run by the trigger scheduler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Trigger:
    name: str
    properties_schema: dict[str, Any]


TRIGGERS: dict[str, Trigger] = {
    "core.webhook": Trigger(
        "core.webhook",
        {
            "type": "object",
            "properties": {
                "max_body_bytes": {"type": "integer", "minimum": 1, "maximum": 10485760}
            },
            "additionalProperties": False,
        },
    ),
    "core.schedule": Trigger(
        "core.schedule",
        {
            "type": "object",
            "required": ["cron"],
            "properties": {
                "cron": {"type": "string", "minLength": 9, "maxLength": 200},
                "payload": {},
            },
            "additionalProperties": False,
        },
    ),
    "core.event": Trigger(
        "core.event",
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string", "minLength": 1}},
            "additionalProperties": False,
        },
    ),
}

DEFAULT_WEBHOOK_BODY_BYTES = 1024 * 1024
