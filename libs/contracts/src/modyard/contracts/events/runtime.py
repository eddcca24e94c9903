"""The runtime's events: what flows emit (``core.emit``), what automations emit (``emit``), a
workspace's app published or withdrawn, and the changes every runtime process drops its cached
copy on (a flow, a workspace's automations, its egress allow-list)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field

from modyard.contracts.events import EventData

FLOW_EMITTED: Final = "modyard.runtime.flow.emitted"
AUTOMATION_EVENT_EMITTED: Final = "modyard.runtime.automation_event.emitted"
APP_PUBLISHED: Final = "modyard.runtime.app.published"
APP_DELETED: Final = "modyard.runtime.app.deleted"
#: A flow was started, stopped, replaced or deleted (its status or definition changed).
FLOW_CHANGED: Final = "modyard.runtime.flow.changed"
#: A workspace's automations, app settings or app instances changed: its program is rebuilt.
AUTOMATIONS_CHANGED: Final = "modyard.runtime.automations.changed"
#: A workspace's egress allow-list was replaced.
EGRESS_CHANGED: Final = "modyard.runtime.egress.changed"


class FlowEmitted(EventData):
    """A flow event: its own dotted name and data, heard by the flows of its workspace."""

    type: str
    data: Any = None
    workspace: str
    #: The emitting flow and node (a Slingr package's ``triggerEvent`` may run outside one).
    flow_id: str | None = None
    node: str | None = None
    #: How many emits led here (a chain stops at the runtime's limit).
    depth: int = 1


class AutomationEventEmitted(EventData):
    """A workspace event of the automations: ``type`` is its full name (``toolbox.executed``)."""

    workspace: str
    type: str
    payload: Any = None
    depth: int = 0
    #: What emitted it (an automation, or the platform's ``native`` event).
    source: dict[str, Any] = Field(default_factory=dict)


class AppPublished(EventData):
    workspace: str
    app: str
    version: str


class AppDeleted(EventData):
    workspace: str
    app: str


class FlowChanged(EventData):
    workspace: str
    flow_id: str


class AutomationsChanged(EventData):
    workspace: str


class EgressChanged(EventData):
    workspace: str
