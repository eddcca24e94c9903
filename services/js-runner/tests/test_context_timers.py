"""``context.setTimeout(content, ms)`` / ``clearTimeout(id)`` on the runner: the answer carries
the timers to park, and the ``timeout`` message runs the component once, or not at all when
cleared, early, or another workspace's (the runtime's part: test_timers_flow_e2e.py)."""

from __future__ import annotations

from typing import Any

import pytest
from persistence_env import PersistentHarness

pytestmark = pytest.mark.infra

REMINDER = """
module.exports = {
    async receive(context) {
        if (context.messages.timeout) {
            const { content, timeoutId } = context.messages.timeout;
            return context.sendJson({ fired: content, timeoutId }, 'out');
        }
        const { ms, clear, fail } = context.messages.in.content;
        const id = await context.setTimeout({ remind: context.messages.in.content.what }, ms);
        if (clear) await context.clearTimeout(id);
        if (fail) throw new Error('failed after setting a timer');
        return context.sendJson({ set: id }, 'out');
    }
};
"""


async def _fire(
    persistent: PersistentHarness, module: str, timer: dict[str, Any], **scope: Any
) -> dict[str, Any]:
    return await persistent.call(
        module,
        "Reminder",
        {"timerId": timer["id"], "round": timer["round"]},
        port="timeout",
        workspace=scope.get("workspace", "wsa"),
        flow_id="flow-1",
        node_id="node-1",
        message_id=f"timeout-{timer['id']}-{timer['round']}",
    )


async def test_a_timer_comes_back_once_with_its_content(persistent: PersistentHarness) -> None:
    module = persistent.module({"Reminder": REMINDER})
    set_ = await persistent.run(module, "Reminder", {"what": "call ada", "ms": 0})
    [timer] = set_["timeouts"]
    assert set_["outputs"]["out"] == [{"set": timer["id"]}]
    assert timer["ms"] == 0
    assert timer["round"] == 0
    fired = await _fire(persistent, module, timer)
    assert fired == {
        "outputs": {"out": [{"fired": {"remind": "call ada"}, "timeoutId": timer["id"]}]}
    }
    # A redelivery of the same timeout message runs nothing.
    assert await _fire(persistent, module, timer) == {"outputs": {}}


async def test_a_timer_that_comes_back_early_is_parked_again_for_what_remains(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Reminder": REMINDER})
    set_ = await persistent.run(module, "Reminder", {"what": "later", "ms": 3_600_000})
    [timer] = set_["timeouts"]
    early = await _fire(persistent, module, timer)
    assert early["outputs"] == {}
    [again] = early["timeouts"]
    assert again["id"] == timer["id"]
    assert again["round"] == 1
    assert 3_500_000 < again["ms"] <= 3_600_000


async def test_a_cleared_timer_runs_nothing(persistent: PersistentHarness) -> None:
    module = persistent.module({"Reminder": REMINDER})
    cleared = await persistent.run(module, "Reminder", {"what": "never", "ms": 0, "clear": True})
    assert "timeouts" not in cleared  # nothing to park
    timer_id = cleared["outputs"]["out"][0]["set"]
    assert await _fire(persistent, module, {"id": timer_id, "round": 0}) == {"outputs": {}}


async def test_a_failed_call_leaves_no_timer(persistent: PersistentHarness) -> None:
    module = persistent.module({"Reminder": REMINDER})
    failed = await persistent.run(module, "Reminder", {"what": "x", "ms": 0, "fail": True})
    assert "failed after setting a timer" in failed["error"]["message"]
    assert "timeouts" not in failed


async def test_another_workspaces_timeout_message_runs_nothing_and_changes_nothing(
    persistent: PersistentHarness,
) -> None:
    module = persistent.module({"Reminder": REMINDER})
    set_ = await persistent.run(module, "Reminder", {"what": "mine", "ms": 0})
    [timer] = set_["timeouts"]
    # The same timer id, flow and node, in another workspace: nothing fires there…
    assert await _fire(persistent, module, timer, workspace="wsb") == {"outputs": {}}
    # …and the timer still fires in its own workspace.
    fired = await _fire(persistent, module, timer)
    assert fired["outputs"]["out"][0]["fired"] == {"remind": "mine"}
