"""Prometheus metrics of automation runs (served on the runtime's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

AUTOMATION_RUNS = Counter(
    "modyard_automation_runs",
    "Automation runs by trigger and outcome (ok, failed)",
    ["trigger", "outcome"],
)
AUTOMATION_DURATION = Histogram(
    "modyard_automation_run_duration_seconds",
    "Time an automation run took, its nested calls included",
    ["trigger"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 300),
)
