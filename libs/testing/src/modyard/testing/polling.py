"""Waiting in tests for something that happens in another process or task, without sleeping a
fixed time: poll the condition until it holds or the time is up (then fail saying so)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    timeout: float = 30.0,
    *,
    interval: float = 0.1,
) -> None:
    """Return once ``check()`` (sync or async) is true; ``AssertionError`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        outcome = check()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout:g} s")
        await asyncio.sleep(interval)
