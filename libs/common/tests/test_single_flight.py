"""SingleFlight: one read per key shared by concurrent callers, and what a forget does to it;
ExpiringCopies: the copies kept from those reads, for a while."""

from __future__ import annotations

import asyncio
import gc

import pytest

from modyard.common.single_flight import ExpiringCopies, SingleFlight


async def settle() -> None:
    """Let every task started so far run up to its next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


class Source:
    """A value read slowly enough for callers to meet, counting the reads; ``gate`` holds every
    read until it is set."""

    def __init__(self, value: str = "v1") -> None:
        self.value = value
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: Exception | None = None

    async def read(self) -> str:
        self.reads += 1
        seen = self.value
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return seen


async def test_concurrent_callers_share_one_read_and_its_value_is_kept() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.gate.clear()
    kept: list[str] = []
    callers = [asyncio.create_task(flights.get("k", source.read, kept.append)) for _ in range(20)]
    await settle()
    source.gate.set()
    assert await asyncio.gather(*callers) == ["v1"] * 20
    assert source.reads == 1
    assert kept == ["v1"]
    assert not flights.reading("k")


async def test_keys_are_read_apart() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    one, two = Source("one"), Source("two")
    assert await asyncio.gather(flights.get("a", one.read), flights.get("b", two.read)) == [
        "one",
        "two",
    ]
    assert (one.reads, two.reads) == (1, 1)


async def test_a_forget_during_a_read_answers_its_waiters_keeps_nothing_and_reads_again() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.gate.clear()
    kept: list[str] = []
    before = asyncio.create_task(flights.get("k", source.read, kept.append))
    await settle()
    assert source.reads == 1
    # The change lands, then its news: the read in flight may have seen the old value.
    source.value = "v2"
    flights.forget("k")
    after = asyncio.create_task(flights.get("k", source.read, kept.append))
    await settle()
    assert source.reads == 2  # a caller after the forget does not join the old read
    source.gate.set()
    assert await before == "v1"  # its waiter is answered all the same
    assert await after == "v2"
    assert kept == ["v2"]  # only the read begun after the forget is kept
    assert not flights.reading("k")


async def test_forget_all_leaves_every_read_in_flight_unkept() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.gate.clear()
    kept: list[str] = []
    reads = [asyncio.create_task(flights.get(key, source.read, kept.append)) for key in "ab"]
    await settle()
    flights.forget_all()
    source.gate.set()
    assert await asyncio.gather(*reads) == ["v1", "v1"]
    assert kept == []


async def test_a_cancelled_waiter_does_not_cancel_the_read_the_others_wait_for() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.gate.clear()
    kept: list[str] = []
    first = asyncio.create_task(flights.get("k", source.read, kept.append))
    second = asyncio.create_task(flights.get("k", source.read, kept.append))
    await settle()
    first.cancel()
    await settle()
    assert first.cancelled()
    source.gate.set()
    assert await second == "v1"
    assert source.reads == 1
    assert kept == ["v1"]


async def test_a_read_whose_every_waiter_left_still_completes_and_is_kept() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.gate.clear()
    kept: list[str] = []
    waiter = asyncio.create_task(flights.get("k", source.read, kept.append))
    await settle()
    waiter.cancel()
    source.gate.set()
    await settle()
    assert kept == ["v1"]


async def test_an_error_reaches_every_waiter_and_is_not_kept() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.gate.clear()
    source.error = ConnectionError("database away")
    kept: list[str] = []
    callers = [asyncio.create_task(flights.get("k", source.read, kept.append)) for _ in range(3)]
    await settle()
    source.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert source.reads == 1
    assert kept == []
    assert not flights.reading("k")
    # The next caller reads again (the failure is not what the key answers from now on).
    source.error = None
    assert await flights.get("k", source.read, kept.append) == "v1"
    assert source.reads == 2


async def test_start_runs_the_read_in_the_background_for_a_stale_copy() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    kept: list[str] = []
    task = flights.start("k", source.read, kept.append)
    assert flights.start("k", source.read, kept.append) is task  # joined, not doubled
    assert await task == "v1"
    assert kept == ["v1"]


@pytest.mark.parametrize("forgotten", [False, True])
async def test_a_failed_read_nobody_awaits_is_not_reported_as_unretrieved(
    forgotten: bool, caplog: pytest.LogCaptureFixture
) -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    source = Source()
    source.error = RuntimeError("boom")
    task = flights.start("k", source.read)
    if forgotten:
        flights.forget("k")
    await asyncio.wait([task])
    del task
    gc.collect()
    assert "exception was never retrieved" not in caplog.text


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("modyard.common.single_flight.time", clock)
    return clock


async def test_a_copy_serves_until_its_time_is_up_then_is_read_again(clock: Clock) -> None:
    sources = {"a": Source("a1"), "b": Source("b1")}
    copies: ExpiringCopies[str, str] = ExpiringCopies(
        "test", lambda key: sources[key].read(), ttl=5
    )
    assert await asyncio.gather(*(copies.get("a") for _ in range(10))) == ["a1"] * 10
    assert sources["a"].reads == 1  # the callers that missed together shared one read
    sources["a"].value = "a2"
    clock.now += 4.9
    assert await copies.get("a") == "a1"
    clock.now += 0.1
    assert await copies.get("a") == "a2"
    assert sources["a"].reads == 2
    assert await copies.get("b") == "b1"


async def test_a_forgotten_copy_is_read_again_and_the_others_stay(clock: Clock) -> None:
    sources = {"a": Source("a1"), "b": Source("b1")}
    copies: ExpiringCopies[str, str] = ExpiringCopies(
        "test", lambda key: sources[key].read(), ttl=300
    )
    await copies.get("a")
    await copies.get("b")
    sources["a"].value, sources["b"].value = "a2", "b2"
    copies.forget("a")
    assert (await copies.get("a"), await copies.get("b")) == ("a2", "b1")
    copies.forget_all()
    assert await copies.get("b") == "b2"


async def test_past_its_bound_every_copy_goes(clock: Clock) -> None:
    reads: list[str] = []

    async def read(key: str) -> str:
        reads.append(key)
        return key

    copies: ExpiringCopies[str, str] = ExpiringCopies("test", read, ttl=300, max_entries=2)
    for key in "abc":
        await copies.get(key)
    await copies.get("a")  # still there: three copies, one over the bound, none dropped yet
    await copies.get("d")  # the fourth finds the bound passed: all go, then it is kept
    await copies.get("a")
    assert reads == ["a", "b", "c", "d", "a"]
