"""Group commit: many callers' small requests run as one statement.

Each node execution needs one dedupe lookup and one insert. Sent one by one, every message costs
two database round trips, and on a busy worker the round trips (system calls on both sides, the
protocol's framing) are most of what a node execution costs. A :class:`MicroBatcher` sends the
first request at once and, while it is in flight, lets the next ones queue up; they go together
in the next statement. An idle worker gets the latency of a single request; a busy one gets
batches as large as its concurrency, with no timer anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class ItemFailed(Exception):
    """A batch's result for one item that failed on its own (its data, not the batch): the
    caller of that item gets ``error``, the others their results."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class MicroBatcher(Generic[Item, Result]):
    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result | ItemFailed]]],
        *,
        max_batch: int = 500,
        in_flight: int = 2,
    ) -> None:
        """``run`` gets a batch and returns one result per item, in order (an
        :class:`ItemFailed` for an item that failed alone); ``in_flight`` batches may run at
        once (each on its own database connection)."""
        self._run = run
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._drainers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._drainers) < self._in_flight:
            drainer = asyncio.create_task(self._drain())
            self._drainers.add(drainer)
        return await future

    async def _drain(self) -> None:
        try:
            await self._drain_pending()
        finally:
            # Leave the set in the same step that found nothing pending. A done callback would
            # run a loop turn later: a submit() in between saw the set full, started no drainer,
            # and its item waited for ever (the last messages of a burst, never acknowledged).
            task = asyncio.current_task()
            if task is not None:
                self._drainers.discard(task)

    async def _drain_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await self._run([item for item, _ in batch])
            except BaseException as exc:
                # Every caller of the batch sees the failure (and gives its message back).
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():  # a caller that was cancelled meanwhile
                    continue
                if isinstance(result, ItemFailed):
                    future.set_exception(result.error)
                else:
                    future.set_result(result)

    async def close(self) -> None:
        for drainer in list(self._drainers):
            drainer.cancel()
        await asyncio.gather(*self._drainers, return_exceptions=True)
