"""CloudEvents 1.0 envelopes (structured JSON mode) for every event on the bus.

The spec is small and stable, so the envelope is a pydantic model rather than the CloudEvents SDK:
this gives us validation, JSON Schema and mypy types with no adapter layer. Extension attributes
are allowed (lowercase alphanumeric names, per the spec); ``correlationid`` is ours.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modyard.common.observability import tracing
from modyard.common.request_context import current_correlation_id

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"

# modyard.<service>.<entity>.<verb>, e.g. modyard.registry.module.published
MODYARD_EVENT_TYPE = re.compile(r"^modyard\.[a-z][a-z0-9-]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=255)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1, max_length=255)
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: Any = None
    correlationid: str | None = None

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("time must carry a timezone (RFC 3339)")
        return value

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json_bytes(cls, body: bytes) -> CloudEvent:
        return cls.model_validate_json(body)


def new_event(
    *,
    source: str,
    type: str,
    data: Any,
    subject: str | None = None,
    correlation_id: str | None = None,
) -> CloudEvent:
    """A fresh event; the correlation id defaults to the one of the work being done."""
    if not MODYARD_EVENT_TYPE.match(type):
        raise ValueError(f"event type {type!r} must look like modyard.<service>.<entity>.<verb>")
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=type,
        subject=subject,
        time=datetime.now(UTC),
        data=data,
        correlationid=correlation_id or current_correlation_id(),
        # CloudEvents' distributed tracing extension: the trace the event belongs to.
        **tracing.current_traceparent(),
    )


def event_type(service: str, entity: str, verb: str) -> str:
    return f"modyard.{service}.{entity}.{verb}"


def routing_key_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching (``*`` one word, ``#`` zero or more), used to dispatch in-process."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head in ("*", words[0])) and _match(rest, words[1:])
