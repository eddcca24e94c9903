"""deploy/monitoring: the alert rules pass `promtool test rules` (Debian's prometheus package,
installed by scripts/bootstrap.sh), the production overlay's PrometheusRule holds the same rules,
and every metric a rule or a Grafana dashboard queries is one the services export."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = sorted(MONITORING.glob("*.test.yml"))
PROMETHEUS_RULE = ROOT / "deploy" / "k8s" / "overlays" / "production" / "prometheusrule.yaml"
DASHBOARDS = sorted((MONITORING / "grafana").glob("*.json"))
#: Metrics that come from elsewhere: Prometheus itself and cert-manager.
EXTERNAL = {"up", "certmanager_certificate_expiration_timestamp_seconds"}
#: Every module that defines metrics (importing the apps imports them all).
APPS = (
    "modyard.registry.app",
    "modyard.installer.app",
    "modyard.runtime.app",
    "modyard.appcell_gateway.app",
    "modyard.deployer.app",
    "modyard.common.observability.flow_metrics",
)
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "le", "time", "rate", "increase", "delta", "deriv", "sum", "max", "min",
    "avg", "count", "histogram_quantile", "clamp_min", "label_values", "abs",
}  # fmt: skip


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: run scripts/bootstrap.sh (Debian's prometheus package)"
    return found


@cache
def exported_names() -> frozenset[str]:
    """Every sample name the services' metrics can produce."""
    for module in APPS:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"),
        }.get(family.type, ())
        names.update(family.name + suffix for suffix in suffixes)
    return frozenset(names)


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, strings and durations
    left out)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    without_matchers = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_matchers)
    without_ranges = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_ranges
    )
    without_numbers = re.sub(r"(?<![\w:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", "0", without_ranges)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_numbers))
    return {word for word in words if word not in PROMQL_WORDS and not word.startswith("$")}


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.match(r"label_values\((.*),\s*\w+\)$", variable["query"]["query"])
            assert inner, variable
            queries.append(inner.group(1))
    return queries


def test_the_rules_file_is_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", *(path.name for path in RULE_TESTS)],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested
    docs = (ROOT / "docs" / "observability.md").read_text()
    for alert in alerts:
        assert f"### {alert}" in docs, alert


def test_the_production_prometheus_rule_holds_the_tested_rules() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_every_rule_reads_metrics_the_services_export() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        unknown = metric_names(rule["expr"]) - exported_names() - EXTERNAL
        assert not unknown, f"{rule['alert']}: {unknown}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_is_grafana_json_whose_queries_read_exported_metrics(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"].startswith("modyard-")
    assert dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for query in dashboard_queries(dashboard):
        names = metric_names(query)
        assert names, query
        unknown = names - exported_names() - EXTERNAL
        assert not unknown, f"{path.name}: {query} reads {unknown}"


def test_dashboards_cover_the_cluster_a_flow_a_cell_and_the_deployer() -> None:
    assert {path.stem for path in DASHBOARDS} >= {"cluster", "flow", "cell", "deployer"}


def test_the_metric_check_catches_a_misspelt_metric() -> None:
    assert metric_names('sum by (queue) (rate(modyard_queue_mesages{queue="x"}[5m]))') == {
        "modyard_queue_mesages"
    }
    assert "modyard_queue_mesages" not in exported_names()
