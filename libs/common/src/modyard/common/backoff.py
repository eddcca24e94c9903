"""Capped exponential backoff with jitter: the one rule every retry in modyard waits by.

Retry ``n`` (1 for the first) waits up to ``base · factorⁿ⁻¹``, never more than ``cap``
(:meth:`Backoff.ceiling`). :meth:`Backoff.delay` then takes a random part of up to ``jitter`` (a
fraction) off that ceiling, so that what failed together (every row of an outbox when the broker
went away, every webhook of a receiver that was down) does not retry in the same instant. The
ceiling is never exceeded, so a cap stays a promise. ``jitter=0`` keeps the delays exact where a
schedule must be predictable: the runtime's flow retries are rounded up to delay tiers anyway, and
the deployer's CrashLoopBackOff follows Kubernetes, which has none.

The same object is a tenacity ``wait`` (:meth:`Backoff.wait`) for the loops that retry through
tenacity (connecting to the broker or the database at start-up).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenacity import RetryCallState


@dataclass(frozen=True)
class Backoff:
    #: The first retry's wait, seconds.
    base: float
    #: No wait is longer, seconds.
    cap: float
    #: How much each retry's ceiling grows.
    factor: float = 2.0
    #: The largest fraction of the ceiling taken off at random (0 to 1).
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap > 0 and self.factor >= 1 and 0 <= self.jitter <= 1):
            raise ValueError(
                "a backoff needs base > 0, cap > 0, factor >= 1 and jitter between 0 and 1 "
                f"(got base={self.base}, cap={self.cap}, factor={self.factor}, "
                f"jitter={self.jitter})"
            )

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt`` (1-based): ``base · factor^(attempt-1)``,
        capped."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        exponent = attempt - 1
        if exponent == 0 or self.factor == 1:
            return min(self.base, self.cap)
        # Compared in logarithms: factor ** 10_000 would overflow a float.
        if exponent >= math.log(self.cap / self.base, self.factor):
            return self.cap
        return min(self.base * self.factor**exponent, self.cap)

    def delay(self, attempt: int) -> float:
        """The wait before retry ``attempt``: the ceiling less a random part of up to ``jitter``."""
        # Not a secret: any spread will do, so the module-level generator is enough.
        spread = random.random()  # noqa: S311
        return self.ceiling(attempt) * (1 - self.jitter * spread)

    def wait(self, state: RetryCallState) -> float:
        """As tenacity's ``wait=``: the delay after ``state.attempt_number`` failed attempts."""
        return self.delay(state.attempt_number)


#: Reaching the broker or the database while a service starts: 0.5 s doubling up to 10 s.
STARTUP_BACKOFF = Backoff(base=0.5, cap=10, jitter=0.5)
