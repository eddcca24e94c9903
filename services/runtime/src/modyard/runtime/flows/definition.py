"""The shape of a flow: nodes that use components, and connections from an output port of one
node to an input port of another."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Node(_Strict):
    #: ``core.<name>`` for a built-in component, ``<installation slug>.<component>`` otherwise
    #: (both may hold dots: see :mod:`modyard.common.component_refs`).
    component: str = Field(min_length=3, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    #: The id of the account (installer, docs/accounts.md) the component runs with, when it
    #: needs one: the flow owner's, of the component's auth service.
    account: str | None = Field(default=None, max_length=64)


class Connection(_Strict):
    source: str = Field(alias="from", pattern=NODE_ID_PATTERN)
    source_port: str = Field(default="out", alias="from_port", max_length=64)
    target: str = Field(alias="to", pattern=NODE_ID_PATTERN)
    target_port: str = Field(default="in", alias="to_port", max_length=64)


class FlowDefinition(_Strict):
    nodes: dict[str, Node] = Field(default_factory=dict)
    connections: list[Connection] = Field(default_factory=list)
    #: Overrides of the runtime's retry policy for this flow (max_attempts, base_delay_seconds, …).
    retry_policy: dict[str, Any] = Field(default_factory=dict)

    def outgoing(self, node: str, port: str) -> list[tuple[int, Connection]]:
        return [
            (index, connection)
            for index, connection in enumerate(self.connections)
            if connection.source == node and connection.source_port == port
        ]


class FlowIn(_Strict):
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=4000)
    owner: str | None = Field(
        default=None,
        max_length=255,
        description="The caller by default; only operators may name someone else (recorded).",
    )
    definition: FlowDefinition = Field(default_factory=FlowDefinition)
