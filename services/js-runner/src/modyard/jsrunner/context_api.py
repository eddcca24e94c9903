"""The persistent members of the Appmixer context, as RPCs a child sends during a call.

A component calls ``context.stateSet(…)``, ``context.lock(…)``, ``context.store.find(…)`` …; the
child sends an ``rpc`` frame naming the call it belongs to, the method and its arguments, and
this side answers from PostgreSQL. The workspace, flow and node are those of the call, kept here
(:class:`CallScope`): nothing the component sends can name another workspace.

One :class:`CallScope` lives as long as its call; what the call still holds when it ends (locks,
unfinished uploads) is released then, and timers it set are returned with its answer (the
runtime parks them on its delay tiers) or cancelled if it failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from modyard.common.db.database import Database
from modyard.jsrunner import appmixer_calls, data_store, files, locks, state, timers
from modyard.jsrunner.context_errors import ContextError
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)


@dataclass
class CallScope:
    """Who a call runs for, from the runtime's request (never from the child)."""

    workspace: str
    flow_id: str
    node_id: str
    module: str
    component: str
    message_id: str
    #: The component declares ``state.persistent``: its state survives the flow's stop.
    persistent: bool = False
    #: Locks taken and not released yet: (name, token).
    held_locks: dict[str, str] = field(default_factory=dict)
    #: Timers set during the call, returned with its answer.
    timers: list[dict[str, Any]] = field(default_factory=list)
    #: Files being written, removed if the call ends before they are finished.
    uploads: set[str] = field(default_factory=set)
    _timer_seq: int = 0

    @property
    def node_owner(self) -> str:
        return f"{self.flow_id}/{self.node_id}"

    def next_timer_id(self) -> str:
        """Derived from the message: a redelivered message sets the same timers again, and the
        runtime's ledger and this table keep them from firing twice."""
        self._timer_seq += 1
        digest = hashlib.sha256(f"{self.message_id}:{self.node_owner}:{self._timer_seq}".encode())
        return digest.hexdigest()[:32]

    def require_workspace(self, member: str) -> None:
        if not self.workspace:
            raise ContextError(
                f"context.{member} keeps its data per workspace, and this call has none (it ran "
                "outside a flow)",
                "ERR_NOT_SUPPORTED",
            )


Method = Callable[["ContextApi", CallScope, dict[str, Any]], Awaitable[Any]]


class ContextApi:
    def __init__(self, settings: JsRunnerSettings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.locks = locks.LockManager(settings, database)
        self._methods: dict[str, Method] = {
            **state.METHODS,
            **locks.METHODS,
            **timers.METHODS,
            **data_store.METHODS,
            **files.METHODS,
            **appmixer_calls.METHODS,
        }

    async def dispatch(self, method: str, args: Any, scope: CallScope) -> Any:
        handler = self._methods.get(method)
        if handler is None:
            raise ContextError(f"context member {method!r} is not built here", "ERR_NOT_SUPPORTED")
        if not isinstance(args, dict):
            raise ContextError(f"{method}: arguments must be an object", "ERR_BAD_OPTION")
        return await handler(self, scope, args)

    async def finish(self, scope: CallScope, *, succeeded: bool) -> list[dict[str, Any]]:
        """What the call left: its locks released, its unfinished uploads removed, its timers
        cancelled when it failed. The timers to park when it succeeded.

        Never raises: with the database away, a lock's row expires with its ttl, an unfinished
        file stays unreadable (only finished files are read), and a failed call's timer fires
        (its call is retried and sets it again under the same id)."""
        for name, token in list(scope.held_locks.items()):
            try:
                await self.locks.release(scope.workspace, name, token)
            except Exception:
                log.warning("js_lock_not_released", lock=name, exc_info=True)
        scope.held_locks.clear()
        if scope.uploads:
            try:
                await files.discard(self.database, scope.workspace, scope.uploads)
            except Exception:
                log.warning("js_upload_not_removed", exc_info=True)
            scope.uploads.clear()
        if not scope.timers:
            return []
        if succeeded:
            return [
                {"id": timer["id"], "ms": timer["ms"], "round": 0}
                for timer in scope.timers
                if not timer.get("cleared")
            ]
        try:
            await timers.cancel_all(self.database, scope.workspace, [t["id"] for t in scope.timers])
        except Exception:
            log.warning("js_timers_not_cancelled", exc_info=True)
        return []

    async def answer(self, method: str, args: Any, scope: Any) -> dict[str, Any]:
        """The ``rpc-result`` fields for a child's frame: ``result``, or ``error`` with the
        message the component's promise rejects with."""
        try:
            return {"result": await self.dispatch(method, args, scope)}
        except ContextError as exc:
            return {"error": {"message": exc.message, "code": exc.code}}
        except Exception as exc:  # the database is away, a bug: the call may be retried
            log.warning("js_context_member_failed", method=method, exc_info=True)
            return {
                "error": {
                    "message": f"context {method} failed in the runner ({type(exc).__name__})",
                    "code": "ERR_RUNNER",
                }
            }
