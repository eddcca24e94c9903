"""A bound on label values that come from tenants (flow ids, node ids, cells, actions).

Every distinct label set is a time series Prometheus keeps; a tenant who creates ten thousand flows
must not create ten thousand series per metric. Each :class:`LabelBudget` admits the first
``limit`` values it sees in this process and reports every later one as ``OTHER``: the totals stay
right, only the breakdown of the latecomers is lost (their traces and logs still name them). The
limits are settings (``MODYARD_METRICS_MAX_FLOWS``, ``…_MAX_NODES_PER_FLOW``, ``…_MAX_CELLS``,
``…_MAX_ACTIONS_PER_CELL``), so the worst case is known: see docs/observability.md.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict

OTHER = "_other"


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODYARD_METRICS_", extra="ignore")

    max_flows: int = 200
    max_nodes_per_flow: int = 32
    max_cells: int = 200
    max_actions_per_cell: int = 32


@lru_cache(maxsize=1)
def metrics_settings() -> MetricsSettings:
    return MetricsSettings()


class LabelBudget:
    """The first ``limit`` distinct values pass; any other is :data:`OTHER`."""

    __slots__ = ("_admitted", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._admitted: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._admitted:
            return value
        if len(self._admitted) >= self.limit:
            return OTHER
        self._admitted.add(value)
        return value


class NestedBudget:
    """Outer values (flows, cells) under one budget, inner values (nodes, actions) under a budget
    per admitted outer value."""

    def __init__(self, outer: int, inner: int) -> None:
        self._outer = LabelBudget(outer)
        self._inner_limit = inner
        self._inner: dict[str, LabelBudget] = {}

    def __call__(self, outer: str, inner: str) -> tuple[str, str]:
        admitted = self._outer(outer)
        if admitted == OTHER:
            return OTHER, OTHER
        budget = self._inner.get(admitted)
        if budget is None:
            budget = self._inner[admitted] = LabelBudget(self._inner_limit)
        return admitted, budget(inner)
