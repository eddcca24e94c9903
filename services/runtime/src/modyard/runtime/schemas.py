"""What the runtime's HTTP API returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modyard.common.errors import InvalidParam


class FlowOut(BaseModel):
    id: uuid.UUID
    workspace: str
    name: str
    description: str | None
    owner: str
    created_by: str | None
    #: The operator who named the owner, when it is not the flow's creator.
    owner_set_by: str | None
    status: str
    stop_reason: str | None
    definition: dict[str, Any]
    started_at: datetime | None
    stopped_at: datetime | None
    revision: int
    created_at: datetime
    updated_at: datetime


class FlowPage(BaseModel):
    items: list[FlowOut]


class FlowValidation(BaseModel):
    valid: bool
    errors: list[InvalidParam]


class UnprocessedOut(BaseModel):
    id: uuid.UUID
    workspace: str
    flow_id: uuid.UUID
    node_id: str
    component: str
    message_id: str
    port: str
    payload: Any
    attempts: int
    errors: list[dict[str, Any]]
    reason: str
    created_at: datetime


class UnprocessedPage(BaseModel):
    items: list[UnprocessedOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class RetryBody(BaseModel):
    payload: Any = Field(default=None, description="A replacement payload; omit to retry as it was")


class BulkResult(BaseModel):
    count: int
    ids: list[uuid.UUID] = Field(default_factory=list)


class HookAccepted(BaseModel):
    message_id: str
