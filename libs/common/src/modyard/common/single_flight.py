"""One read per key at a time, shared by every caller that needs it meanwhile.

A process's cached copy (a flow, a workspace's program or allow-list, an installation's config)
expires, or is dropped by a change's event, while hundreds of executions want it: without this,
each starts its own read. :class:`SingleFlight` holds the read in flight per key; the callers that
come while it runs wait for the same result. The cache itself stays the caller's (its TTL, its
size): the read hands its value to ``keep`` only if it is still the key's read when it ends.

What a :meth:`~SingleFlight.forget` does to a read in flight (the rule of every cache in modyard):
the read still answers the callers already waiting for it, but its value is not kept, and a caller
after the forget starts a new read. A forget announces a change that the read, begun before it,
may not have seen: keeping its value would bring back, for a whole TTL, the copy the change just
replaced; answering its waiters with it is no worse than if they had come a moment earlier.

async-lru's ``alru_cache`` (2.0.4 read) shares reads too, and its ``cache_invalidate`` during a
call keeps nothing of the old read, but it owns the storage (keys built from the call's
arguments, one TTL timer per entry, and the old read's completion arms the expiry of the newer
entry under the same key), and the program cache here serves an expired copy while it is rebuilt,
which it does not do: the storage stays each cache's, this is only the sharing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self, name: str = "read") -> None:
        self._name = name
        self._reads: dict[K, asyncio.Task[V]] = {}

    def start(
        self,
        key: K,
        read: Callable[[], Awaitable[V]],
        keep: Callable[[V], None] | None = None,
    ) -> asyncio.Task[V]:
        """The key's read in flight, or a new one of ``read()`` if there is none. When it ends
        still the key's read (no :meth:`forget` meanwhile), its value goes to ``keep``."""
        task = self._reads.get(key)
        if task is None:
            task = asyncio.create_task(self._run(key, read, keep), name=f"{self._name}-{key}")
            # Waiters may all be cancelled: a failure nobody awaits is not an asyncio warning.
            task.add_done_callback(_retrieve)
            self._reads[key] = task
        return task

    async def get(
        self,
        key: K,
        read: Callable[[], Awaitable[V]],
        keep: Callable[[V], None] | None = None,
    ) -> V:
        """The result of the key's read (this caller's or the one in flight). A caller cancelled
        while it waits leaves the read to the others (shielded); an error reaches every waiter
        and nothing is kept, so the next caller reads again."""
        return await asyncio.shield(self.start(key, read, keep))

    def reading(self, key: K) -> bool:
        return key in self._reads

    def forget(self, key: K) -> None:
        """The read in flight for ``key``, if any, is no longer the key's: it answers its
        waiters, keeps nothing, and the next caller starts another."""
        self._reads.pop(key, None)

    def forget_all(self) -> None:
        self._reads.clear()

    async def _run(
        self, key: K, read: Callable[[], Awaitable[V]], keep: Callable[[V], None] | None
    ) -> V:
        try:
            value = await read()
        finally:
            current = self._reads.get(key) is asyncio.current_task()
            if current:
                del self._reads[key]
        if current and keep is not None:
            keep(value)
        return value


class ExpiringCopies(Generic[K, V]):
    """A process's copies by key, each trusted ``ttl`` seconds once read, read once per key at a
    time (:class:`SingleFlight`, with its forget rule). ``read(key)`` makes a copy; ``forget``
    drops one (its change's event), ``forget_all`` every one (news may have been missed). Over
    ``max_entries`` copies, all go: a bound on memory, not an eviction policy (the copies are
    cheap to read again and few in practice)."""

    def __init__(
        self,
        name: str,
        read: Callable[[K], Awaitable[V]],
        ttl: float,
        *,
        max_entries: int | None = None,
    ) -> None:
        self.ttl = ttl
        self._read = read
        self._max_entries = max_entries
        self._copies: dict[K, tuple[float, V]] = {}
        self._reads: SingleFlight[K, V] = SingleFlight(name)

    async def get(self, key: K) -> V:
        copy = self._copies.get(key)
        if copy is not None and copy[0] > time.monotonic():
            return copy[1]

        def keep(value: V) -> None:
            if self._max_entries is not None and len(self._copies) > self._max_entries:
                self._copies.clear()
            self._copies[key] = (time.monotonic() + self.ttl, value)

        return await self._reads.get(key, lambda: self._read(key), keep)

    def forget(self, key: K) -> None:
        self._copies.pop(key, None)
        self._reads.forget(key)

    def forget_all(self) -> None:
        self._copies.clear()
        self._reads.forget_all()


def _retrieve(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()
