"""The events a system webhook can subscribe to, and the ``data`` each one carries.

Every delivery's body is a :class:`WebhookPayload` envelope (``id``, ``event``, ``created_at``,
``data``); the models below describe ``data`` per event. They allow extra keys so the engine can add
context without breaking receivers, and ``EXAMPLES`` holds one valid ``data`` per event: the docs
(``docs/system-webhooks.md``) show the same examples, and the tests check they still validate.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

COMPONENT_ERROR = "component.error"
MESSAGE_UNPROCESSED = "message.unprocessed"
FLOW_STOPPED = "flow.stopped"
TRIGGER_FAILING = "trigger.failing"
TRIGGER_RECOVERED = "trigger.recovered"
ACCOUNT_INVALID = "account.invalid"
#: Sent only by ``POST /v1/system-webhooks/{id}/test``, to that one webhook; not subscribable.
WEBHOOK_TEST = "webhook.test"

#: Events a webhook may subscribe to (``*`` subscribes to all of them, and to future ones).
EVENTS: tuple[str, ...] = (
    COMPONENT_ERROR,
    MESSAGE_UNPROCESSED,
    FLOW_STOPPED,
    TRIGGER_FAILING,
    TRIGGER_RECOVERED,
    ACCOUNT_INVALID,
)
ALL_EVENTS = "*"


class _Data(BaseModel):
    # Receivers must ignore keys they do not know; the engine may add context over time.
    model_config = ConfigDict(extra="allow")


class FlowRef(_Data):
    id: str = Field(description="The flow's id")
    name: str | None = Field(default=None, description="The flow's name when it has one")


class ErrorInfo(_Data):
    message: str = Field(description="What failed, as the component or the engine reported it")
    retryable: bool = Field(description="Whether the engine retries the message")
    status: int | None = Field(
        default=None, description="HTTP-like status of the failure when the component gave one"
    )


class AffectedComponent(_Data):
    node: str = Field(description="The node id inside the flow")
    component: str = Field(description="The component's name, e.g. slack.SendMessage")
    module: str = Field(description="The module the component comes from")
    from_version: str | None = Field(default=None, description="Module version the flow used")
    to_version: str | None = Field(default=None, description="Module version now installed")


class _FlowEvent(_Data):
    workspace: str = Field(description="Slug of the flow's workspace")
    flow: FlowRef


class _NodeEvent(_FlowEvent):
    node: str = Field(description="The node id inside the flow")
    component: str = Field(description="The component's name")


class FlowStoppedData(_FlowEvent):
    """The system stopped a flow; its owner has to act (Appmixer's ``WEBHOOK_FLOW_STOPPED``)."""

    owner: str = Field(description="Subject (email for people) of the flow's owner")
    reason: str = Field(
        description="Why, as a stable code: module_major_upgrade, module_removed, operator, ..."
    )
    detail: str | None = Field(default=None, description="Human explanation of the reason")
    affected_components: list[AffectedComponent] = Field(
        description="The flow's nodes that caused the stop and need reconfiguring"
    )
    stopped_at: datetime


class ComponentErrorData(_NodeEvent):
    """A component failed to process a message (it may still be retried)."""

    error: ErrorInfo
    attempt: int = Field(ge=1, description="Which attempt failed (1 is the first)")
    message_id: str = Field(description="The message the component was processing")


class MessageUnprocessedData(_NodeEvent):
    """A message used up its retries and went to the dead-letter store."""

    unprocessed_message_id: str = Field(description="Id in GET /v1/unprocessed-messages")
    attempts: int = Field(ge=1)
    reason: str | None = Field(
        default=None, description="retries_exhausted, or not_retryable when the error was final"
    )
    error: ErrorInfo = Field(description="The last attempt's error")


class TriggerFailingData(_NodeEvent):
    """A trigger started failing (e.g. its module was removed); it keeps polling."""

    since: datetime = Field(description="When the trigger started failing")
    error: ErrorInfo


class TriggerRecoveredData(_NodeEvent):
    """A trigger that was failing works again."""

    since: datetime = Field(description="When the trigger had started failing")
    recovered_at: datetime | None = None


class AccountRef(_Data):
    id: str = Field(description="The account's id (GET /v1/workspaces/{ws}/accounts/{id})")
    name: str = Field(description="The account's name, e.g. the vendor's login")
    service: str = Field(description="The auth service, e.g. appmixer:google")


class AccountInvalidData(_Data):
    """The provider refused to refresh an account's tokens: components using it fail until its
    owner connects it again."""

    workspace: str = Field(description="Slug of the account's workspace")
    owner: str = Field(description="Subject (email for people) of the account's owner")
    account: AccountRef
    reason: str = Field(description="Why, in the provider's words when it gave some")


class WebhookTestData(_Data):
    webhook_id: uuid.UUID
    message: str


#: The model of ``data`` for each event.
EVENT_MODELS: dict[str, type[_Data]] = {
    COMPONENT_ERROR: ComponentErrorData,
    MESSAGE_UNPROCESSED: MessageUnprocessedData,
    FLOW_STOPPED: FlowStoppedData,
    TRIGGER_FAILING: TriggerFailingData,
    TRIGGER_RECOVERED: TriggerRecoveredData,
    ACCOUNT_INVALID: AccountInvalidData,
    WEBHOOK_TEST: WebhookTestData,
}


class WebhookPayload(BaseModel):
    """The JSON body of every delivery."""

    id: uuid.UUID = Field(
        description="The event's id: the same in every webhook's delivery of it and in retries; "
        "receivers deduplicate on it"
    )
    event: str
    created_at: datetime
    data: dict[str, Any]


_FLOW = {"id": "5b6f2c1e-8d0a-4c51-9a7e-2f4f0c3d9b11", "name": "New leads to Slack"}
_ERROR = {"message": "slack.SendMessage: 401 invalid_auth", "retryable": True, "status": 401}

#: One valid ``data`` per event, as documented.
EXAMPLES: dict[str, dict[str, Any]] = {
    ACCOUNT_INVALID: {
        "workspace": "acme",
        "owner": "jane@acme.example",
        "account": {
            "id": "7d1e6a52-3f0b-4c8e-9a41-5b2c7d8e9f10",
            "name": "jane@gmail.example",
            "service": "appmixer:google",
        },
        "reason": "the provider refused to refresh the tokens: invalid_grant",
    },
    FLOW_STOPPED: {
        "workspace": "acme",
        "flow": _FLOW,
        "owner": "jane@acme.example",
        "reason": "module_major_upgrade",
        "detail": "slack 2.0.0 is a new major version; reconfigure the affected nodes.",
        "affected_components": [
            {
                "node": "send-1",
                "component": "slack.SendMessage",
                "module": "slack",
                "from_version": "1.4.2",
                "to_version": "2.0.0",
            }
        ],
        "stopped_at": "2025-03-01T10:15:00Z",
    },
    COMPONENT_ERROR: {
        "workspace": "acme",
        "flow": _FLOW,
        "node": "send-1",
        "component": "slack.SendMessage",
        "error": _ERROR,
        "attempt": 2,
        "message_id": "0f8e4b3a-5c2d-4e1f-9a8b-7c6d5e4f3a2b",
    },
    MESSAGE_UNPROCESSED: {
        "workspace": "acme",
        "flow": _FLOW,
        "node": "send-1",
        "component": "slack.SendMessage",
        "unprocessed_message_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "attempts": 10,
        "reason": "not_retryable",
        "error": {**_ERROR, "retryable": False},
    },
    TRIGGER_FAILING: {
        "workspace": "acme",
        "flow": _FLOW,
        "node": "new-lead",
        "component": "hubspot.NewContact",
        "since": "2025-03-01T09:00:00Z",
        "error": {
            "message": "module hubspot is not installed in workspace acme",
            "retryable": True,
            "status": None,
        },
    },
    TRIGGER_RECOVERED: {
        "workspace": "acme",
        "flow": _FLOW,
        "node": "new-lead",
        "component": "hubspot.NewContact",
        "since": "2025-03-01T09:00:00Z",
        "recovered_at": "2025-03-01T09:42:10Z",
    },
    WEBHOOK_TEST: {
        "webhook_id": "3d7c9e2a-1b4f-4c6d-8e0a-9f2b3c4d5e6f",
        "message": "A test delivery from modyard; no action is needed.",
    },
}
