"""What the system-webhooks API takes and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from modyard.common.egress.policy import PROBLEM_SLUG, EgressRefused
from modyard.common.errors import InvalidParam, ValidationFailed
from modyard.runtime.egress import gate
from modyard.runtime.webhooks.models import DeliveryStatus
from modyard.runtime.webhooks.payloads import ALL_EVENTS, EVENTS

MIN_SECRET_LENGTH = 16


def _subscribable(name: str) -> str:
    if name != ALL_EVENTS and name not in EVENTS:
        # A custom error keeps pydantic's "Value error, " prefix out of the problem's detail.
        raise PydanticCustomError(
            "unknown_event",
            "unknown event '{name}'; use one of {known} or '*'",
            {"name": name, "known": ", ".join(EVENTS)},
        )
    return name


def _invalid_url(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_url", message)


EventName = Annotated[str, AfterValidator(_subscribable)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=2048, description="Where deliveries are POSTed: an http:// or https:// URL"
    )
    events: list[EventName] = Field(
        min_length=1,
        max_length=32,
        description=f"Events to receive: any of {', '.join(EVENTS)}, or '*' for all",
    )
    secret: str = Field(
        min_length=MIN_SECRET_LENGTH,
        max_length=512,
        description="HMAC-SHA256 key the deliveries are signed with; never returned",
    )
    description: str | None = Field(default=None, max_length=255)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as exc:
            raise _invalid_url(f"not a valid URL ({exc})") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid_url("must be an absolute http:// or https:// URL with a host")
        if any(character.isspace() for character in value):
            raise _invalid_url("must not contain whitespace")
        try:
            gate.current().policy.check_url(value)
        except EgressRefused as exc:
            # A Problem, not a ValueError: pydantic lets it through, and the caller gets the
            # egress-refused problem naming the rule rather than a generic validation error.
            raise ValidationFailed(
                f"url: {exc.detail}",
                slug=PROBLEM_SLUG,
                errors=[InvalidParam(pointer="/body/url", detail=exc.detail)],
                rule=exc.rule,
            ) from None
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    active: bool
    secret_set: bool = Field(description="Always true: the secret is stored but never shown")
    created_by: str
    created_at: datetime


class WebhookPage(BaseModel):
    items: list[WebhookOut]


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_at: datetime | None = Field(description="When the next attempt is due; null if none")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    event_id: uuid.UUID
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next")
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[AttemptOut]
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="The JSON body as sent")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null at the end"
    )
