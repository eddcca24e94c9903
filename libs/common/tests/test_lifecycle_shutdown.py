"""A service's background tasks stop on shutdown, and one that will not cannot hold it."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from modyard.common.app_factory import Lifecycle


async def test_stopping_cancels_every_task_and_waits_for_it() -> None:
    lifecycle = Lifecycle()
    cleaned: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append(name)

    lifecycle.tasks += [asyncio.create_task(worker(n), name=n) for n in ("a", "b")]
    await asyncio.sleep(0)
    await lifecycle.stop_tasks()
    assert sorted(cleaned) == ["a", "b"]
    assert all(task.cancelled() for task in lifecycle.tasks)


async def test_a_task_that_swallows_its_cancellation_is_named_and_left_behind() -> None:
    lifecycle = Lifecycle()
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # the bug this guards against: a loop that eats its cancellation

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    lifecycle.tasks.append(task)
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await lifecycle.stop_tasks(grace_seconds=0.2)
    assert not task.done()
    assert {"event": "background_task_ignored_cancellation", "task": "stubborn-loop"} in [
        {k: entry[k] for k in ("event", "task") if k in entry} for entry in logs
    ]
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=1)
