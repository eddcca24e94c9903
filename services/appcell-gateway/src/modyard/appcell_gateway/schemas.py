"""The gateway's API models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ActionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any = Field(default=None, description="What the action's payload schema describes")
    data: dict[str, Any] | None = Field(
        default=None,
        description="The data an AppCell payload template is compiled from (product, order, "
        "customer …); fields sent in 'payload' are taken as they are",
    )
    customer_product_id: str | None = Field(
        default=None,
        max_length=255,
        description="The customer product the call is for (required by 'public' actions)",
    )


class ActionAnswer(BaseModel):
    status: str = Field(description="'success'")
    result: Any = Field(description="The cell's result, valid against the action's result schema")
    postpayload: Any = Field(
        default=None, description="What the billing system writes afterwards (rendered), if any"
    )
    for_update: Any = Field(
        default=None,
        alias="for-update",
        description="What an AppCell cell answered for the billing system to update on the "
        "product (its 'for-update'), only when it answered one",
    )

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class CellSummary(BaseModel):
    installation_id: uuid.UUID
    workspace: str
    slug: str
    module: str
    version: str
    status: str
    error: str | None = None
    revision: int
    queue: str
    plugins: list[str]
    created_at: datetime
    updated_at: datetime


class CellDetail(CellSummary):
    label: str | None = None
    #: plugin → {implements, actions: {key: [{resource, action, security, payload, result,
    #: postpayload, payload_template, result_example}]}}, schemas as documents with the reference
    #: they came from
    plugin_actions: dict[str, Any]
    resources: dict[str, Any]
    settings: dict[str, Any]
    ui: dict[str, Any]


class CellCredentials(BaseModel):
    installation_id: uuid.UUID
    amqp_url: str = Field(description="Broker URL with the cell's own user and password")
    vhost: str
    username: str
    queue: str = Field(description="The queue the cell consumes its requests from")
    reply_exchange: str = Field(description="Where the cell publishes its replies")


class RequestEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    correlation_id: str
    installation_id: uuid.UUID | None
    cell: str | None
    plugin: str | None
    action: str | None
    resource: str | None
    ingress: str
    caller: str | None
    customer_product_id: str | None
    outcome: str
    status_code: int
    latency_ms: float
    detail: str | None
    created_at: datetime


class RequestPage(BaseModel):
    items: list[RequestEntry]


class SlotBundle(BaseModel):
    kind: str = Field(description="'dependency' (load first) or 'module'")
    name: str | None = None
    url: str | None = None
    path: str | None = None
    digest: str | None = None
    installation_id: uuid.UUID | None = None
    slot_filters: list[str] = Field(default_factory=list)


class SlotBundles(BaseModel):
    slot: str
    product: str | None
    bundles: list[SlotBundle]
