"""Changes to what every runtime process keeps a copy of, announced once they commit.

A change's event goes in the outbox with the change (``record_event``), so it is published only
after the commit, and every process drops its copy when it hears it (replica_news.py). The
process that served the change also drops its own right after the commit, for its caller's next
request (the event comes a moment later). Never before the commit: a read between that drop and
the commit would see the old row and keep it for a whole TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.envelope import new_event
from modyard.common.bus.outbox import record_event
from modyard.common.db.commit_hooks import after_commit
from modyard.contracts.events import EventData, payload
from modyard.contracts.events.runtime import (
    AUTOMATIONS_CHANGED,
    EGRESS_CHANGED,
    FLOW_CHANGED,
    AutomationsChanged,
    EgressChanged,
    FlowChanged,
)

#: The runtime's CloudEvents source (``RuntimeSettings().source``: the service's name is fixed).
SOURCE: Final = "/modyard/runtime"


async def _announce(
    session: AsyncSession,
    kind: str,
    data: EventData,
    subject: str,
    drop_here: Callable[[], None] | None,
) -> None:
    await record_event(
        session, new_event(source=SOURCE, type=kind, subject=subject, data=payload(data))
    )
    if drop_here is not None:
        after_commit(session, drop_here)


async def flow_changed(
    session: AsyncSession,
    workspace: str,
    flow_id: uuid.UUID,
    drop_here: Callable[[], None] | None = None,
) -> None:
    """A flow's status or definition changed (started, stopped, replaced, deleted)."""
    data = FlowChanged(workspace=workspace, flow_id=str(flow_id))
    await _announce(session, FLOW_CHANGED, data, str(flow_id), drop_here)


async def automations_changed(
    session: AsyncSession, workspace: str, drop_here: Callable[[], None] | None = None
) -> None:
    """What a workspace's program is built of changed (automations, app settings, instances)."""
    data = AutomationsChanged(workspace=workspace)
    await _announce(session, AUTOMATIONS_CHANGED, data, workspace, drop_here)


async def egress_changed(
    session: AsyncSession, workspace: str, drop_here: Callable[[], None] | None = None
) -> None:
    """A workspace's egress allow-list was replaced."""
    data = EgressChanged(workspace=workspace)
    await _announce(session, EGRESS_CHANGED, data, workspace, drop_here)
