"""The runtime's answers: flows, unprocessed messages, system webhooks, module workers' broker
credentials."""

from __future__ import annotations

from typing import Any, TypeAlias

from pydantic import Field, JsonValue

from modyard.contracts.api import ApiModel, Timestamp


class FlowOut(ApiModel):
    id: str
    workspace: str
    name: str
    description: str | None
    owner: str
    created_by: str | None
    #: The operator who named the owner, when it is not the flow's creator.
    owner_set_by: str | None
    #: stopped, running…; ``stop_reason`` says why it stopped when it was not asked to.
    status: str
    stop_reason: str | None
    definition: dict[str, Any]
    started_at: Timestamp | None
    stopped_at: Timestamp | None
    revision: int
    created_at: Timestamp
    updated_at: Timestamp


class InvalidParam(ApiModel):
    """One failing field, located by a JSON pointer (the problems' ``errors`` items)."""

    pointer: str
    detail: str
    file: str | None = None


class FlowValidation(ApiModel):
    valid: bool
    errors: list[InvalidParam]


class UnprocessedOut(ApiModel):
    id: str
    workspace: str
    flow_id: str
    node_id: str
    component: str
    message_id: str
    port: str
    payload: Any
    attempts: int
    errors: list[dict[str, Any]]
    reason: str
    created_at: Timestamp


class BulkResult(ApiModel):
    """How many messages a bulk retry or delete took, and which."""

    count: int
    ids: list[str] = Field(default_factory=list)


class WebhookOut(ApiModel):
    id: str
    url: str
    events: list[str]
    description: str | None
    active: bool
    #: Always true: the secret is stored but never shown.
    secret_set: bool
    created_by: str
    created_at: Timestamp


class AttemptOut(ApiModel):
    attempt: int
    at: Timestamp
    status_code: int | None
    error: str | None
    duration_ms: int
    retry_at: Timestamp | None


class DeliveryOut(ApiModel):
    id: str
    webhook_id: str
    event: str
    event_id: str
    #: pending, delivered, failed
    status: str
    attempts: int
    next_attempt_at: Timestamp | None
    last_attempt_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    attempt_log: list[AttemptOut]
    created_at: Timestamp
    delivered_at: Timestamp | None
    #: The JSON body as sent.
    payload: dict[str, Any]


class WorkerCredentialsOut(ApiModel):
    """What ``modyard cell run <module:worker> --credentials <file>`` takes; the password is in
    ``amqp_url`` and shown only here."""

    installation_id: str
    workspace: str
    slug: str
    module: str
    amqp_url: str
    vhost: str
    username: str
    queue: str
    reply_exchange: str
    #: Connections closed with the old password.
    closed_connections: int


# -- automations and apps ----------------------------------------------------------------------


class AutomationOut(ApiModel):
    slug: str
    name: str
    description: str | None
    private: bool
    #: Kept but never run by any trigger, endpoint or call.
    disabled: bool = False
    #: Calls and triggers are checked against the arguments' schemas.
    validateArguments: bool = False
    arguments: dict[str, Any]
    #: ``endpoint``, ``events``, ``schedules``.
    when: dict[str, Any]
    do: list[Any]
    output: Any


class SourceOut(ApiModel):
    workspace: str
    #: The slugs of the automations the source holds now.
    automations: list[str]


#: What an automation endpoint (``/v1/workspaces/{ws}/endpoints/{name}``) answers: its
#: automation's output as the automation returned it, any JSON value; the route declares no model.
EndpointOutput: TypeAlias = JsonValue


class RunOut(ApiModel):
    automation: str
    #: Full slug of the instance it ran in.
    app_instance: str | None
    output: Any
    #: Events it emitted (full names).
    emitted: list[dict[str, Any]]
    duration_ms: float


class PublishOut(ApiModel):
    workspace: str
    #: The registry module name.
    app: str
    version: str
    created: bool
    #: Instances sent apps.published.
    notified_instances: int


class PublishedApp(ApiModel):
    app: str
    workspace: str
    version: str | None
    label: str | None
    description: str | None
    photo: str | None


class InstanceAutomation(ApiModel):
    slug: str
    private: bool
    #: ``disabled: true``: never run.
    disabled: bool = False
    #: Full endpoint name, e.g. functions.execute.
    endpoint: str | None
    #: Full names of the events it listens to.
    events: list[str]


class AutomationProblem(ApiModel):
    #: JSON pointer into the automation.
    pointer: str
    detail: str


class UnusableAutomation(ApiModel):
    slug: str
    problems: list[AutomationProblem]


class AppInstanceOut(ApiModel):
    #: Full slug: nlu.french for french inside nlu.
    slug: str
    app: str
    version: str
    pinned: bool
    parent: str | None
    #: Effective config, secrets masked.
    config: dict[str, Any]
    automations: list[InstanceAutomation]
    #: Automations of the app version this runtime cannot run, and why.
    unusable: list[UnusableAutomation] = Field(default_factory=list)
