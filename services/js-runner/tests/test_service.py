"""The runner as a service: a real process in a test cluster, its sandbox report, and the
refusal to run in production with a sandbox layer missing unless an operator accepts it."""

from __future__ import annotations

import pytest
import structlog

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings, Environment
from modyard.jsrunner import isolation as isolation_module
from modyard.jsrunner.isolation import WeakIsolationRefused, check, probe
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.testing.cluster import running_cluster
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers


@pytest.mark.infra
async def test_the_runner_runs_in_the_test_cluster_and_reports_its_sandbox(
    infra: IsolatedInfra,
) -> None:
    async with running_cluster(
        infra.env(), services=("js-runner",), schema_suffix="jsproc"
    ) as cluster:
        report = await cluster.api("GET", "js-runner", "/v1/sandbox")
        assert report.status_code == 200, report.text
        body = report.json()
        assert (body["namespaces"], body["mounts"], body["permissions"], body["missing"]) == (
            True,
            True,
            True,
            [],
        )
        assert body["node"].startswith("v20")
        user = auth_headers(CommonSettings(), Role.user, workspaces=("a",))
        refused = await cluster.api("GET", "js-runner", "/v1/sandbox", headers=user)
        assert refused.status_code == 403


async def test_production_refuses_a_missing_layer_unless_an_operator_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = JsRunnerSettings(unshare_binary="/bin/false")
    isolation = await probe(settings)
    assert not isolation.namespaces
    assert isolation.permissions
    production = settings.model_copy(update={"environment": Environment.production})
    with pytest.raises(WeakIsolationRefused, match="ACCEPT_WEAK_ISOLATION"):
        check(isolation, production)
    accepted = production.model_copy(update={"accept_weak_isolation": True})
    with structlog.testing.capture_logs() as logs:
        # A logger not yet used: an app started earlier in the session (create_app configures
        # structlog with cache_logger_on_first_use) has cached the module's own.
        monkeypatch.setattr(
            isolation_module, "log", structlog.get_logger(isolation_module.__name__)
        )
        check(isolation, accepted)  # starts, and says so at every start
    assert [entry["event"] for entry in logs] == ["js_runner_weak_isolation"]
    assert logs[0]["accepted"] is True


def test_module_allowances_name_known_permissions_only() -> None:
    with pytest.raises(ValueError, match="unknown"):
        JsRunnerSettings(module_allowances={"acme.crm": ["network"]})
    allowed = JsRunnerSettings(module_allowances='{"acme.crm": ["child-process"]}')
    assert allowed.module_allowances == {"acme.crm": ["child-process"]}
