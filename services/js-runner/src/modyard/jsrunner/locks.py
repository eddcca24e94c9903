"""``context.lock(name, {ttl, retryDelay, maxRetryCount})`` → ``{unlock(), extend(ttl)}``.

A lock is a row per (workspace, name) in PostgreSQL, so that runner replicas exclude each other;
a row whose ``expires_at`` passed (its holder crashed) is taken over. Within one runner, callers
of the same lock queue on an asyncio lock first (first come, first served) and only the head of
the queue touches the row: 100 callers of one lock are served one after the other without
polling the database 100 times over. Whatever a call still holds when it ends is released.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from modyard.common.db.database import Database
from modyard.jsrunner.context_errors import ContextError
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.jsrunner.tables import locks as table

if TYPE_CHECKING:
    from modyard.jsrunner.context_api import CallScope, ContextApi, Method


@dataclass
class _Local:
    lock: asyncio.Lock
    users: int = 0
    token: str | None = None


def _milliseconds(args: dict[str, Any], name: str, default: float, *, most: float) -> float:
    value = args.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ContextError(
            f"lock(name, {{{name}}}): {name} must be milliseconds (a number ≥ 0)", "ERR_BAD_OPTION"
        )
    return min(float(value), most)


class LockManager:
    def __init__(self, settings: JsRunnerSettings, database: Database) -> None:
        self._settings = settings
        self._database = database
        self._local: dict[tuple[str, str], _Local] = {}

    async def _take_row(self, workspace: str, name: str, token: str, ttl_ms: float) -> bool:
        now = datetime.now(UTC)
        expires = now + timedelta(milliseconds=ttl_ms)
        statement = pg_insert(table).values(
            workspace=workspace, name=name, token=token, expires_at=expires
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[table.c.workspace, table.c.name],
            set_={"token": statement.excluded.token, "expires_at": statement.excluded.expires_at},
            where=table.c.expires_at < sa.func.now(),
        ).returning(table.c.token)
        async with self._database.transaction() as session:
            return bool((await session.scalar(upsert)) == token)

    async def acquire(self, scope: CallScope, name: str, args: dict[str, Any]) -> str:
        settings = self._settings
        ttl = (
            _milliseconds(
                args,
                "ttl",
                settings.lock_default_ttl_seconds * 1000,
                most=settings.lock_max_ttl_seconds * 1000,
            )
            or settings.lock_default_ttl_seconds * 1000
        )
        retry_delay = _milliseconds(args, "retryDelay", 200.0, most=60_000.0)
        retries = args.get("maxRetryCount")
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            raise ContextError(
                "lock(name, {maxRetryCount}): must be a whole number ≥ 0", "ERR_BAD_OPTION"
            )
        if name in scope.held_locks:
            raise ContextError(f"lock({name!r}): this call already holds it", "ERR_LOCKED")
        key = (scope.workspace, name)
        local = self._local.setdefault(key, _Local(asyncio.Lock()))
        local.users += 1
        try:
            if retries == 0 and local.lock.locked():
                raise ContextError(f"lock({name!r}) is held by another call", "ERR_LOCKED")
            limit = None if retries is None else retries * retry_delay / 1000
            try:
                async with asyncio.timeout(limit):
                    await local.lock.acquire()
            except TimeoutError:
                raise ContextError(
                    f"lock({name!r}) is held by another call (waited {retries} times {retry_delay:g} ms)",
                    "ERR_LOCKED",
                ) from None
            token = secrets.token_hex(16)
            try:
                attempts = 0
                while not await self._take_row(scope.workspace, name, token, ttl):
                    # Held by another runner (or a crashed one, until its ttl): wait, as asked.
                    attempts += 1
                    if retries is not None and attempts > retries:
                        raise ContextError(f"lock({name!r}) is held by another call", "ERR_LOCKED")
                    await asyncio.sleep(retry_delay / 1000)
            except BaseException:
                # Refused, or the call was stopped while waiting: the next caller goes on.
                local.lock.release()
                raise
            local.token = token
            scope.held_locks[name] = token
            return token
        finally:
            local.users -= 1
            if local.users == 0 and not local.lock.locked():
                self._local.pop(key, None)

    async def release(self, workspace: str, name: str, token: str) -> None:
        try:
            async with self._database.transaction() as session:
                await session.execute(
                    sa.delete(table).where(
                        table.c.workspace == workspace, table.c.name == name, table.c.token == token
                    )
                )
        finally:
            # This runner's next caller goes on even if the row could not be deleted (the
            # database is away): the row then expires with its ttl.
            key = (workspace, name)
            local = self._local.get(key)
            if local is not None and local.token == token and local.lock.locked():
                local.token = None
                local.lock.release()
                if local.users == 0:
                    self._local.pop(key, None)

    async def extend(self, workspace: str, name: str, token: str, ttl_ms: float) -> bool:
        async with self._database.transaction() as session:
            result = await session.execute(
                sa.update(table)
                .where(table.c.workspace == workspace, table.c.name == name, table.c.token == token)
                .values(expires_at=datetime.now(UTC) + timedelta(milliseconds=ttl_ms))
            )
        return bool(getattr(result, "rowcount", 0))


def _name(args: dict[str, Any]) -> str:
    name = args.get("name")
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise ContextError(
            "lock(name): name must be a non-empty string of at most 1024 characters",
            "ERR_BAD_OPTION",
        )
    return name


async def _acquire(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    scope.require_workspace("lock")
    token = await api.locks.acquire(scope, _name(args), args)
    return {"token": token}


async def _release(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    name = _name(args)
    token = scope.held_locks.pop(name, None)
    if token is not None:
        await api.locks.release(scope.workspace, name, token)
    return None


async def _extend(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    name = _name(args)
    token = scope.held_locks.get(name)
    if token is None:
        raise ContextError(f"lock({name!r}).extend(): this call does not hold it", "ERR_LOCKED")
    settings = api.settings
    ttl = _milliseconds(
        args,
        "ttl",
        settings.lock_default_ttl_seconds * 1000,
        most=settings.lock_max_ttl_seconds * 1000,
    )
    if not await api.locks.extend(scope.workspace, name, token, ttl):
        raise ContextError(
            f"lock({name!r}).extend(): it expired and another call took it", "ERR_LOCKED"
        )
    return None


METHODS: dict[str, Method] = {
    "lock.acquire": _acquire,
    "lock.release": _release,
    "lock.extend": _extend,
}
