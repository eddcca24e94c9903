"""The order of the timeouts a Slingr call meets (issue 21: Slingr's 30 s limit per script): the
runner stops a script past its limit and reports it (classified, not retried) before its own
deadline for the child, and that deadline comes before the runtime stops waiting for the
runner. Each service's settings validator holds it to ``JS_CALL_ANSWER_SECONDS``."""

from __future__ import annotations

import pytest
from jsrunner_env import runner_settings
from pydantic import ValidationError

from modyard.contracts.js_calls import JS_CALL_ANSWER_SECONDS
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.runtime.settings import RuntimeSettings


def test_by_default_a_script_has_slingrs_30_s_and_every_caller_waits_longer() -> None:
    runner = JsRunnerSettings()
    runtime = RuntimeSettings()
    assert runner.slingr_timeout_seconds == 30
    # The child answers at the limit; the supervisor kills it only a margin later.
    assert runner.slingr_call_timeout_seconds == 35
    assert runner.slingr_call_timeout_seconds <= JS_CALL_ANSWER_SECONDS
    # A listener's or webhook's caller, then the flow's node, wait longer than that.
    assert runtime.js_webhook_timeout_seconds >= JS_CALL_ANSWER_SECONDS
    assert runtime.js_webhook_timeout_seconds < runtime.js_component_timeout_seconds
    # Appmixer components keep their 25 s deadline, inside the runtime's wait as well.
    assert runner.call_timeout_seconds == 25
    assert runner.call_timeout_seconds < runtime.js_component_timeout_seconds
    # Module workers keep theirs.
    assert runtime.component_timeout_seconds == 30


def test_the_call_deadline_follows_the_configured_limit() -> None:
    settings = runner_settings(slingr_timeout_seconds=1, slingr_stop_margin_seconds=2)
    assert settings.slingr_call_timeout_seconds == 3


@pytest.mark.parametrize(
    "overrides",
    [
        {"slingr_timeout_seconds": 36},
        {"slingr_timeout_seconds": 30, "slingr_stop_margin_seconds": 9},
    ],
)
def test_a_limit_the_runtime_would_not_wait_for_is_refused(overrides: dict[str, float]) -> None:
    with pytest.raises(ValidationError) as raised:
        runner_settings(**overrides)
    message = str(raised.value)
    assert "MODYARD_JS_RUNNER_SLINGR_TIMEOUT_SECONDS" in message
    assert "MODYARD_JS_RUNNER_SLINGR_STOP_MARGIN_SECONDS" in message
    assert f"keep it at most {JS_CALL_ANSWER_SECONDS:g} s" in message


def test_the_runtime_refuses_to_give_up_before_the_runner() -> None:
    with pytest.raises(ValidationError) as short:
        RuntimeSettings(js_webhook_timeout_seconds=25)
    assert "MODYARD_RUNTIME_JS_WEBHOOK_TIMEOUT_SECONDS is 25: set it to at least 38 s" in str(
        short.value
    )
    with pytest.raises(ValidationError) as unordered:
        RuntimeSettings(js_webhook_timeout_seconds=40, js_component_timeout_seconds=40)
    assert "MODYARD_RUNTIME_JS_COMPONENT_TIMEOUT_SECONDS is 40: set it above" in str(
        unordered.value
    )
