"""The native events an app instance receives (seed 002, "Available native events").

Each is emitted in the workspace under the instance's full name (``toolbox.workspaces.apps.
configured``), so the instance hears ``workspaces.apps.configured`` and its parents can listen too.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.outbox import record_event
from modyard.runtime.automations.events import workspace_event

INSTALLED: Final = "workspaces.apps.installed"
UNINSTALLED: Final = "workspaces.apps.uninstalled"
CONFIGURED: Final = "workspaces.apps.configured"
PUBLISHED: Final = "apps.published"
DELETED: Final = "apps.deleted"


async def notify_instance(
    session: AsyncSession,
    source: str,
    workspace: str,
    instance: str,
    native: str,
    payload: dict[str, Any],
) -> None:
    await record_event(
        session,
        workspace_event(
            source,
            workspace,
            f"{instance}.{native}",
            {"appInstance": instance, **payload},
            emitted_by={"native": native},
        ),
    )
