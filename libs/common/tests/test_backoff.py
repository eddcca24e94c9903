"""Capped exponential backoff with jitter: ceilings, spread, the cap kept, tenacity's wait."""

from __future__ import annotations

import pytest
from tenacity import AsyncRetrying, stop_after_attempt

from modyard.common.backoff import Backoff


def test_ceilings_grow_by_the_factor_up_to_the_cap() -> None:
    backoff = Backoff(base=2, cap=300)
    assert [backoff.ceiling(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff.ceiling(100_000) == 300  # no float overflow on a long streak
    assert Backoff(base=5, cap=60, factor=1).ceiling(40) == 5
    assert Backoff(base=1, cap=100, factor=3).ceiling(4) == 27


def test_jitter_spreads_delays_below_the_ceiling_and_never_above() -> None:
    backoff = Backoff(base=10, cap=60, jitter=0.5)
    delays = [backoff.delay(3) for _ in range(500)]
    assert all(20 <= delay <= 40 for delay in delays)
    assert len(set(delays)) > 400  # spread, not a fixed offset
    capped = [backoff.delay(50) for _ in range(500)]
    assert all(30 <= delay <= 60 for delay in capped)


def test_no_jitter_means_the_ceiling_exactly() -> None:
    backoff = Backoff(base=10, cap=300, jitter=0)
    assert [backoff.delay(n) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


@pytest.mark.parametrize(
    "arguments",
    [
        {"base": 0, "cap": 1},
        {"base": 1, "cap": 0},
        {"base": 1, "cap": 2, "factor": 0.5},
        {"base": 1, "cap": 2, "jitter": 1.5},
    ],
)
def test_nonsense_parameters_are_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="a backoff needs"):
        Backoff(**arguments)


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        Backoff(base=1, cap=2).ceiling(0)


async def test_it_is_a_tenacity_wait() -> None:
    backoff = Backoff(base=0.001, cap=0.004, jitter=0.5)
    waits: list[float] = []
    attempts = 0
    async for attempt in AsyncRetrying(
        wait=backoff.wait,
        stop=stop_after_attempt(4),
        reraise=True,
        before_sleep=lambda state: waits.append(state.upcoming_sleep),
    ):
        with attempt:
            attempts += 1
            if attempts < 4:
                raise ConnectionError("not yet")
    assert attempts == 4
    for wait, ceiling in zip(waits, (0.001, 0.002, 0.004), strict=True):
        assert ceiling / 2 <= wait <= ceiling
