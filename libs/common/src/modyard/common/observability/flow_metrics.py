"""Per-flow and per-node metrics of the runtime, and per-cell metrics of the gateway.

Labels from tenants go through :mod:`.labels` budgets: at most ``max_flows`` flows (and
``max_nodes_per_flow`` nodes each) and ``max_cells`` cells (``max_actions_per_cell`` actions each)
get series of their own per process; the rest are counted under ``_other``. Histograms are per flow
(not per node) for the same reason. Observations made inside a sampled span carry its trace id as
an exemplar (shown when Prometheus scrapes the OpenMetrics format).
"""

from __future__ import annotations

import time
from types import TracebackType

from prometheus_client import Counter, Histogram

from modyard.common.observability import tracing
from modyard.common.observability.labels import NestedBudget, metrics_settings

#: Seconds, from a millisecond node to an hour of retries through the delay tiers.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)

NODE_EXECUTIONS = Counter(
    "modyard_flow_node_executions_total",
    "Node runs, by outcome (succeeded, failed, replayed: answered from the ledger on redelivery)",
    ["workspace", "flow", "node", "outcome"],
)
NODE_FAILURES = Counter(
    "modyard_flow_node_failures_total",
    "Failed node runs by failure class (timeout, connection, http_status, validation, …)",
    ["workspace", "flow", "node", "class"],
)
NODE_RETRIES = Counter(
    "modyard_flow_node_retries_total",
    "Failed node runs sent to a delay tier to be tried again",
    ["workspace", "flow", "node"],
)
NODE_UNPROCESSED = Counter(
    "modyard_flow_node_unprocessed_total",
    "Messages that became unprocessed messages, by reason",
    ["workspace", "flow", "node", "reason"],
)
NODE_DURATION = Histogram(
    "modyard_flow_node_duration_seconds",
    "Time a node took to run (its component's call included), per flow",
    ["workspace", "flow"],
    buckets=LATENCY_BUCKETS,
)
FLOW_LATENCY = Histogram(
    "modyard_flow_e2e_latency_seconds",
    "From the message that started a run (webhook, trigger) to the end of each branch, per flow",
    ["workspace", "flow"],
    buckets=LATENCY_BUCKETS,
)
CELL_REQUESTS = Histogram(
    "modyard_cell_request_duration_seconds",
    "Gateway to cell round trip, by cell (workspace:slug), action and outcome",
    ["cell", "action", "outcome"],
    buckets=LATENCY_BUCKETS,
)

_settings = metrics_settings()
_flows = NestedBudget(_settings.max_flows, _settings.max_nodes_per_flow)
_cells = NestedBudget(_settings.max_cells, _settings.max_actions_per_cell)


def _labels(workspace: str, flow: str, node: str) -> tuple[str, str, str]:
    flow_label, node_label = _flows(f"{workspace}/{flow}", node)
    return (
        (workspace if flow_label != "_other" else "_other"),
        flow_label.split("/")[-1],
        node_label,
    )


def node_succeeded(workspace: str, flow: str, node: str, seconds: float, *, replayed: bool) -> None:
    ws, fl, nd = _labels(workspace, flow, node)
    NODE_EXECUTIONS.labels(ws, fl, nd, "replayed" if replayed else "succeeded").inc()
    if not replayed:
        NODE_DURATION.labels(ws, fl).observe(seconds, tracing.trace_id_exemplar())


def node_failed(workspace: str, flow: str, node: str, seconds: float, failure: str) -> None:
    ws, fl, nd = _labels(workspace, flow, node)
    NODE_EXECUTIONS.labels(ws, fl, nd, "failed").inc()
    NODE_FAILURES.labels(ws, fl, nd, failure).inc()
    NODE_DURATION.labels(ws, fl).observe(seconds, tracing.trace_id_exemplar())


def node_retried(workspace: str, flow: str, node: str) -> None:
    NODE_RETRIES.labels(*_labels(workspace, flow, node)).inc()


def node_unprocessed(workspace: str, flow: str, node: str, reason: str) -> None:
    NODE_UNPROCESSED.labels(*_labels(workspace, flow, node), reason).inc()


def branch_finished(workspace: str, flow: str, started: float) -> None:
    """A node produced no further message: the run's branch ends here."""
    ws, fl, _ = _labels(workspace, flow, "")
    FLOW_LATENCY.labels(ws, fl).observe(
        max(time.time() - started, 0.0), tracing.trace_id_exemplar()
    )


class CellRequestTimer:
    """``with CellRequestTimer(cell, action):`` around one request to a cell; the outcome is
    ``ok`` or the exception's class name (CellTimeout, CellUnavailable…)."""

    __slots__ = ("_action", "_cell", "_started")

    def __init__(self, cell: str, action: str) -> None:
        self._cell, self._action = _cells(cell, action)
        self._started = 0.0

    def __enter__(self) -> CellRequestTimer:
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        outcome = "ok" if kind is None else kind.__name__
        key = (self._cell, self._action, outcome)
        child = _cell_children.get(key)
        if child is None:
            child = _cell_children[key] = CELL_REQUESTS.labels(*key)
        child.observe(time.perf_counter() - self._started, tracing.trace_id_exemplar())


#: The histogram's child per (cell, action, outcome): ``labels()`` checks and joins its label
#: values each call (1.5 µs, on every action call). Bounded like the series: cells and actions
#: come through the ``_cells`` budget, outcomes are exception class names.
_cell_children: dict[tuple[str, str, str], Histogram] = {}
