"""What a component is to the engine.

A component receives one message on one input port and returns its outputs per output port (each
a list of payloads: zero, one or many messages), or raises :class:`ComponentError` saying whether
the failure is worth retrying. Everything a component may do besides computing (log, emit an
event, wait) goes through its :class:`ExecutionContext`, so components stay testable without a
broker or a database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

Outputs = dict[str, list[Any]]


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character replaced (U+FFFD): for a failure's message and details,
    which a component's exception text fills and PostgreSQL keeps (a notice, an unprocessed
    message's errors), never for the data a flow carries."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(item) for item in value]
    return value


class ComponentError(Exception):
    """A component failed. ``retryable`` decides between a retry tier and the dead-letter store."""

    def __init__(
        self, message: str, *, retryable: bool, status: int | None = None, details: Any = None
    ) -> None:
        # Storable from the start, wherever the error is kept or shown (see without_nul).
        message = without_nul(message)
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.details = without_nul(details)

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "retryable": self.retryable,
            "status": self.status,
            "details": self.details,
        }


@dataclass(frozen=True)
class Delay:
    """Returned by a component that wants its outputs sent later (the engine parks them on a
    delay queue; nothing sleeps in a consumer)."""

    seconds: float
    outputs: Outputs


@dataclass
class ExecutionContext:
    workspace: str
    flow_id: str
    node_id: str
    message_id: str
    #: The node's properties from the flow definition.
    properties: Mapping[str, Any]
    #: The installation's effective configuration (module components), empty for core ones.
    config: Mapping[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    #: Sends a line to the flow's log sink.
    log: Callable[[Any], Awaitable[None]] | None = None
    #: Publishes a domain event (type, data) on the bus.
    emit: Callable[[str, Any], Awaitable[None]] | None = None


class Component(Protocol):
    #: e.g. ``core.transform``
    name: ClassVar[str]
    #: JSON Schema of the node's properties, checked when a flow starts.
    properties_schema: ClassVar[dict[str, Any]]
    #: Output ports the component may send to.
    out_ports: ClassVar[tuple[str, ...]]

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs | Delay: ...
