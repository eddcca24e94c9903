"""CrashLoopBackOff, as Kubernetes does it: the n-th consecutive crash waits base·2ⁿ⁻¹, capped;
a container that stays up long enough starts the count again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from modyard.common.backoff import Backoff


@dataclass(frozen=True)
class BackoffPolicy:
    base_seconds: float = 10.0
    cap_seconds: float = 300.0
    reset_after_seconds: float = 600.0

    def delay(self, step: int) -> timedelta:
        """The wait before restart number ``step`` (1 for the first crash) of a crash streak."""
        # No jitter: Kubernetes has none, and an operator reads the schedule off the status.
        backoff = Backoff(base=self.base_seconds, cap=self.cap_seconds, jitter=0)
        return timedelta(seconds=backoff.ceiling(max(step, 1)))

    def next_step(self, step: int, started_at: datetime | None, exited_at: datetime | None) -> int:
        """The streak after a crash: reset when the container had stayed up long enough."""
        if (
            started_at is not None
            and exited_at is not None
            and (exited_at - started_at).total_seconds() >= self.reset_after_seconds
        ):
            return 1
        return step + 1
