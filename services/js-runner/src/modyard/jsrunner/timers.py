"""``context.setTimeout(content, ms)`` / ``context.clearTimeout(id)``: the component is called
again with ``messages.timeout`` once ``ms`` passed, through the runtime's delay tiers (nothing
sleeps in the child or here).

The timer's content and status stay here; the call's answer carries ``timeouts: [{id, ms,
round}]`` and the runtime parks a message ``{timerId, round}`` for the node's ``timeout`` port on
the tier at most ``ms`` long. When it comes back early (a wait longer than the largest tier, or
than the tier it fit), the answer parks it again for what remains. ``clearTimeout`` marks the
timer cancelled: its message then runs nothing. A timer fires once: the first delivery marks it
fired, a redelivery finds it so.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from modyard.common.db.database import Database
from modyard.jsrunner.context_errors import ContextError
from modyard.jsrunner.tables import timers as table

if TYPE_CHECKING:
    from modyard.jsrunner.context_api import CallScope, ContextApi, Method

#: A timer this close to its time fires rather than being parked again.
EARLY_MS = 500


async def _set(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("setTimeout")
    ms = args.get("ms")
    most = api.settings.timer_max_seconds * 1000
    if isinstance(ms, bool) or not isinstance(ms, int | float) or ms < 0 or ms > most:
        raise ContextError(
            f"setTimeout(content, ms): ms must be a number of milliseconds from 0 to {most:g} "
            "(MODYARD_JS_RUNNER_TIMER_MAX_SECONDS)",
            "ERR_BAD_OPTION",
        )
    content = args.get("content")
    timer_id = scope.next_timer_id()
    statement = pg_insert(table).values(
        id=timer_id,
        workspace=scope.workspace,
        flow_id=scope.flow_id,
        node_id=scope.node_id,
        content=content,
        fire_at=datetime.now(UTC) + timedelta(milliseconds=float(ms)),
        status="pending",
    )
    # The same message run again (a redelivery) sets the same timer: only one cancelled by a
    # failed attempt comes back to life.
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={
            "content": statement.excluded.content,
            "fire_at": statement.excluded.fire_at,
            "status": "pending",
        },
        where=table.c.status == "cancelled",
    )
    async with api.database.transaction() as session:
        await session.execute(statement)
    scope.timers.append({"id": timer_id, "ms": float(ms)})
    return {"id": timer_id}


async def _clear(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("clearTimeout")
    timer_id = str(args.get("id") or "")
    async with api.database.transaction() as session:
        await session.execute(
            sa.update(table)
            .where(
                table.c.id == timer_id,
                table.c.workspace == scope.workspace,
                table.c.flow_id == scope.flow_id,
                table.c.status == "pending",
            )
            .values(status="cancelled")
        )
    for timer in scope.timers:
        if timer["id"] == timer_id:
            timer["cleared"] = True
    return None


async def due(database: Database, scope: CallScope, timer_id: str) -> tuple[str, Any]:
    """What the ``timeout`` message of ``timer_id`` does for this node: ``("fire", content)``,
    ``("wait", milliseconds left)`` or ``("gone", None)`` (cleared, fired, another node's)."""
    mine = sa.and_(
        table.c.id == timer_id,
        table.c.workspace == scope.workspace,
        table.c.flow_id == scope.flow_id,
        table.c.node_id == scope.node_id,
        table.c.status == "pending",
    )
    async with database.transaction() as session:
        content = await session.execute(
            sa.update(table)
            .where(mine, table.c.fire_at <= sa.func.now() + timedelta(milliseconds=EARLY_MS))
            .values(status="fired")
            .returning(table.c.content)
        )
        row = content.first()
        if row is not None:
            return "fire", row[0]
        fire_at = await session.scalar(sa.select(table.c.fire_at).where(mine))
    if fire_at is None:
        return "gone", None
    return "wait", max(0.0, (fire_at - datetime.now(UTC)).total_seconds() * 1000)


async def cancel_all(database: Database, workspace: str, ids: list[str]) -> None:
    async with database.transaction() as session:
        await session.execute(
            sa.update(table)
            .where(table.c.id.in_(ids), table.c.workspace == workspace, table.c.status == "pending")
            .values(status="cancelled")
        )


METHODS: dict[str, Method] = {"timer.set": _set, "timer.clear": _clear}
