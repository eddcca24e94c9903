"""The appcell-gateway's answers: cells, their broker credentials, an action's answer, the
request log, the frontend bundles of a UI slot."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modyard.contracts.api import ApiModel, Timestamp


class CellSummary(ApiModel):
    installation_id: str
    workspace: str
    slug: str
    module: str
    version: str
    #: ready, invalid, removed
    status: str
    error: str | None = None
    revision: int
    queue: str
    plugins: list[str]
    created_at: Timestamp
    updated_at: Timestamp


class CellDetail(CellSummary):
    label: str | None = None
    #: plugin → {implements, actions: {key: [{resource, action, security, payload, result,
    #: postpayload}]}}, schemas as documents with the reference they came from.
    plugin_actions: dict[str, Any]
    resources: dict[str, Any]
    settings: dict[str, Any]
    ui: dict[str, Any]


class CellCredentials(ApiModel):
    installation_id: str
    #: Broker URL with the cell's own user and password.
    amqp_url: str
    vhost: str
    username: str
    #: The queue the cell consumes its requests from.
    queue: str
    #: Where the cell publishes its replies.
    reply_exchange: str


class ActionAnswer(ApiModel):
    #: 'success'
    status: str
    #: The cell's result, valid against the action's result schema.
    result: Any
    #: What the billing system writes afterwards (rendered), if any.
    postpayload: Any = None
    #: What an AppCell cell answered for the billing system to update on the product (its
    #: ``for-update``, the name it has on the wire).
    for_update: Any = Field(default=None, alias="for-update")


class RequestEntry(ApiModel):
    id: str
    correlation_id: str
    installation_id: str | None
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
    created_at: Timestamp


class SlotBundle(ApiModel):
    #: 'dependency' (load first) or 'module'
    kind: str
    name: str | None = None
    #: Where the browser loads it from.
    url: str | None = None
    #: The bundled file's path in the cell's archive, when the cell ships it.
    path: str | None = None
    digest: str | None = None
    installation_id: str | None = None
    slot_filters: list[str] = Field(default_factory=list)


class SlotBundles(ApiModel):
    slot: str
    product: str | None
    #: Dependencies first, then the modules, kept by their ``slotFilters``.
    bundles: list[SlotBundle]
