"""The group-commit batcher under the execution ledger (pure asyncio, no infrastructure)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from modyard.runtime.engine.batching import MicroBatcher


async def echo(items: Sequence[int]) -> list[int]:
    return list(items)


async def test_an_item_submitted_as_the_last_drainer_finishes_is_still_run() -> None:
    # The caller of the first item resumes before the drainer's task is marked done: an item
    # submitted right then once waited for ever (found by tests/test_database_restart.py, where
    # the last webhook messages of the load were never acknowledged).
    batcher = MicroBatcher(echo, in_flight=1)
    assert await batcher.submit(1) == 1
    # Submitted in this very step (asyncio.timeout adds no task, unlike wait_for, which would
    # run it a turn later). The timeout only turns a hang into a failure; it measures nothing.
    async with asyncio.timeout(5):
        assert await batcher.submit(2) == 2
    await batcher.close()


async def test_concurrent_items_are_sent_together_and_answered_in_order() -> None:
    batches: list[list[int]] = []

    async def record(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        return [item * 10 for item in items]

    batcher = MicroBatcher(record, in_flight=1)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert batches == [[0, 1, 2, 3, 4]]  # one statement for all five
    await batcher.close()
