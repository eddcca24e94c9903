"""Workspace events: what ``emit`` publishes, and the in-process waiters of ``wait``.

An emitted event travels as one CloudEvent type, ``AUTOMATION_EVENT_EMITTED``, whose data names the workspace
and the event's full name (``toolbox.executed``); the runtime's consumer triggers the automations
listening to that name and wakes the ``wait`` instructions of this process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from modyard.common.bus.envelope import CloudEvent, new_event
from modyard.contracts.events import payload as event_payload
from modyard.contracts.events.runtime import AUTOMATION_EVENT_EMITTED, AutomationEventEmitted

#: An event chain (automation emits, another listens and emits, …) stops this deep.
MAX_EVENT_DEPTH: Final = 32


def workspace_event(
    source: str,
    workspace: str,
    name: str,
    payload: Any,
    *,
    depth: int = 0,
    emitted_by: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
) -> CloudEvent:
    return new_event(
        source=source,
        type=AUTOMATION_EVENT_EMITTED,
        subject=f"{workspace}/{name}",
        data=event_payload(
            AutomationEventEmitted(
                workspace=workspace,
                type=name,
                payload=payload,
                depth=depth,
                source=dict(emitted_by or {}),
            )
        ),
        correlation_id=correlation_id,
    )


def _matches(payload: Any, filters: Mapping[str, Any]) -> bool:
    for path, expected in filters.items():
        value: Any = {"payload": payload}
        for part in str(path).split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value != expected:
            return False
    return True


@dataclass
class _Waiter:
    types: dict[str, Mapping[str, Any]]
    future: asyncio.Future[dict[str, Any]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class EventHub:
    """The ``wait`` instructions of this process, woken by the events it consumes."""

    def __init__(self) -> None:
        self._waiters: dict[str, list[_Waiter]] = {}

    def publish(self, workspace: str, name: str, payload: Any) -> None:
        for waiter in list(self._waiters.get(workspace, [])):
            filters = waiter.types.get(name)
            if filters is not None and not waiter.future.done() and _matches(payload, filters):
                waiter.future.set_result({"type": name, "payload": payload})

    async def wait(
        self,
        workspace: str,
        names: list[str],
        filters: list[dict[str, Any]],
        timeout: float,
    ) -> dict[str, Any] | None:
        waiter = _Waiter(dict(zip(names, filters, strict=True)))
        self._waiters.setdefault(workspace, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter.future
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(workspace, [])
            waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(workspace, None)
