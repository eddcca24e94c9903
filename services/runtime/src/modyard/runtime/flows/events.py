"""Which events a flow hears (``core.event``) and may send (``core.emit``), and the guards on
emit → event chains.

Tenancy: a flow hears only events of its own workspace. Two kinds exist:

* **flow events**, sent by ``core.emit`` under any dotted name outside ``modyard.``: they carry
  the emitting flow's workspace and reach the flows of that workspace only;
* **platform events** a tenant may subscribe to, listed in :data:`TENANT_PLATFORM_EVENTS`: only
  those whose data names the flow's workspace, and only the fields listed (an installation
  event's component specs and configuration stay with the services). Any other ``modyard.``
  type is refused when the flow starts, and no flow may emit a ``modyard.`` type (it would pass
  for a platform event).

Loops: every message carries ``depth``, the number of emits in the chain that started it. An
emit from a message already at ``max_depth`` fails without retry (``event-chain-too-deep``), and
each workspace may emit at most ``rate_per_second`` events on average (``burst`` at once) per
runtime process; above that an emit fails without retry (``event-rate-exceeded``). The failed
message lands in the unprocessed messages, where it can be inspected and retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from modyard.common.bus.envelope import CloudEvent
from modyard.contracts.events import parse
from modyard.contracts.events.installer import (
    INSTALLATION_CONFIGURED,
    INSTALLATION_CREATED,
    INSTALLATION_REMOVED,
    INSTALLATION_UPGRADED,
)
from modyard.contracts.events.runtime import FLOW_EMITTED, FlowEmitted
from modyard.runtime.components.base import ComponentError

PLATFORM_PREFIX: Final = "modyard."

_INSTALLATION_FIELDS: Final = ("workspace", "slug", "module", "version", "pinned", "kind")

#: Platform event type → the data fields a flow of the event's workspace receives.
TENANT_PLATFORM_EVENTS: Final[Mapping[str, tuple[str, ...]]] = {
    INSTALLATION_CREATED: _INSTALLATION_FIELDS,
    INSTALLATION_CONFIGURED: _INSTALLATION_FIELDS,
    INSTALLATION_UPGRADED: (*_INSTALLATION_FIELDS, "breaking", "reason"),
    INSTALLATION_REMOVED: _INSTALLATION_FIELDS,
}


def is_platform_type(kind: str) -> bool:
    return kind.startswith(PLATFORM_PREFIX)


def listen_problem(kind: Any) -> str | None:
    """Why a ``core.event`` node may not listen to ``kind`` (``None``: it may)."""
    if isinstance(kind, str) and is_platform_type(kind) and kind not in TENANT_PLATFORM_EVENTS:
        allowed = ", ".join(sorted(TENANT_PLATFORM_EVENTS))
        return (
            f"A flow cannot listen to {kind!r}: the platform events a flow may hear are "
            f"{allowed} (its own workspace's only); other types are events its workspace's "
            "flows emit with core.emit."
        )
    return None


def emit_problem(kind: Any) -> str | None:
    """Why a ``core.emit`` node may not send ``kind`` (``None``: it may)."""
    if isinstance(kind, str) and is_platform_type(kind):
        return (
            f"A flow cannot emit {kind!r}: names under 'modyard.' are the platform's; "
            "choose a name of your own, e.g. 'acme.order.created'."
        )
    return None


@dataclass(frozen=True)
class HeardEvent:
    """A bus event as the flows of ``workspace`` hear it."""

    workspace: str
    kind: str
    data: Any
    depth: int


def heard_event(event: CloudEvent) -> HeardEvent | None:
    """What ``core.event`` triggers may hear of ``event``, and in which workspace (``None``:
    no flow hears it)."""
    data = event.data if isinstance(event.data, dict) else {}
    workspace = data.get("workspace")
    if not isinstance(workspace, str) or not workspace:
        return None
    if event.type == FLOW_EMITTED:
        emitted = parse(FlowEmitted, data)
        if emitted is None or is_platform_type(emitted.type):
            return None
        return HeardEvent(emitted.workspace, emitted.type, emitted.data, emitted.depth)
    fields = TENANT_PLATFORM_EVENTS.get(event.type)
    if fields is None:
        return None
    return HeardEvent(workspace, event.type, {k: data[k] for k in fields if k in data}, 0)


class _Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class EventGuard:
    """The depth and rate limits of ``core.emit`` (one per runtime process)."""

    def __init__(self, *, max_depth: int, rate_per_second: float, burst: int) -> None:
        self.max_depth = max_depth
        self._rate, self._burst = rate_per_second, burst
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, workspace: str, depth: int) -> None:
        """Raise a non-retryable ``ComponentError`` if a message at ``depth`` of ``workspace``
        may not emit now."""
        if depth >= self.max_depth:
            raise ComponentError(
                f"event chain too deep: this message was started by a chain of {depth} emitted "
                f"events, the most a flow may build is {self.max_depth} "
                "(MODYARD_RUNTIME_EVENT_MAX_DEPTH); a flow that hears its own events loops",
                retryable=False,
                details={"kind": "event-chain-too-deep", "depth": depth},
            )
        bucket = self._buckets.get(workspace)
        if bucket is None:
            bucket = self._buckets[workspace] = _Bucket(self._rate, self._burst)
        if not bucket.take():
            raise ComponentError(
                f"workspace {workspace!r} emits events faster than "
                f"{self._rate:g}/s (burst {self._burst}, MODYARD_RUNTIME_EVENT_RATE_PER_SECOND "
                "and _EVENT_BURST): retry the message once the flood is over",
                retryable=False,
                status=429,
                details={"kind": "event-rate-exceeded"},
            )

    def too_deep(self, depth: int) -> bool:
        """An event from a chain the emit guard would have stopped (an older process sent it)."""
        return depth > self.max_depth
