"""Work that must wait for a transaction's commit: waking a reader of what it wrote (the outbox
relay, a reconciler, the webhook deliverer) or dropping a copy of what it changed. Run before
the commit, that work reads the old rows; run after a rollback, it acts on a change that never
happened."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """``callback()`` once ``session``'s transaction commits, not at all if it rolls back."""
    orm_event.listen(session.sync_session, "after_commit", lambda _session: callback(), once=True)
