"""Changes to what every runtime process keeps a copy of, announced once they commit.

A change's event goes in the outbox with the change (``record_event``), so it is published only
after the commit, and every process drops its copy when it hears it (replica_news.py). Given its
own :class:`ReplicaNews`, the process that served the change hears the same event right after the
commit, for its caller's next request (the broker's copy comes a moment later), through the same
handlers as every other process. Never before the commit: a read between that drop and the
commit would see the old row and keep it for a whole TTL.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Final

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

if TYPE_CHECKING:
    from modyard.runtime.replica_news import ReplicaNews

#: The runtime's CloudEvents source (``RuntimeSettings().source``: the service's name is fixed).
SOURCE: Final = "/modyard/runtime"


async def _announce(
    session: AsyncSession,
    kind: str,
    data: EventData,
    subject: str,
    news: ReplicaNews | None,
) -> None:
    event = new_event(source=SOURCE, type=kind, subject=subject, data=payload(data))
    await record_event(session, event)
    if news is not None:
        after_commit(session, lambda: news.hear(event))


async def flow_changed(
    session: AsyncSession,
    workspace: str,
    flow_id: uuid.UUID,
    news: ReplicaNews | None = None,
) -> None:
    """A flow's status or definition changed (started, stopped, replaced, deleted)."""
    data = FlowChanged(workspace=workspace, flow_id=str(flow_id))
    await _announce(session, FLOW_CHANGED, data, str(flow_id), news)


async def automations_changed(
    session: AsyncSession, workspace: str, news: ReplicaNews | None = None
) -> None:
    """What a workspace's program is built of changed (automations, app settings, instances)."""
    data = AutomationsChanged(workspace=workspace)
    await _announce(session, AUTOMATIONS_CHANGED, data, workspace, news)


async def egress_changed(
    session: AsyncSession, workspace: str, news: ReplicaNews | None = None
) -> None:
    """A workspace's egress allow-list was replaced."""
    data = EgressChanged(workspace=workspace)
    await _announce(session, EGRESS_CHANGED, data, workspace, news)
