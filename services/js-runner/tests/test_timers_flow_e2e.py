"""``context.setTimeout`` in a flow on the real stack: the runner answers with the timer, the
runtime parks a ``timeout`` message on its delay tiers (RabbitMQ TTL queues: nothing sleeps),
the runner parks it again while the wait is not over, then the component runs with
``messages.timeout`` and its output goes on. A timer cleared in the same call never comes back.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from jsrunner_env import bundle_zip
from stack_env import (
    component_refs,
    create_workspace,
    install,
    node_logs,
    publish,
    registry_and_installer,
)
from test_flow_e2e import _start_flow

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.jsrunner.tables import timers
from modyard.runtime.models import TriggerState
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

#: Sends nothing when the message comes in; reminds later (3.5 s: a 2 s tier, then 1 s, then
#: within half a second it fires), unless told to clear the timer at once.
REMIND_JS = """
module.exports = {
    async receive(context) {
        if (context.messages.timeout) {
            return context.sendJson({ reminder: context.messages.timeout.content }, 'out');
        }
        const { what, clear } = context.messages.in.content;
        const id = await context.setTimeout({ what }, 3500);
        if (clear) await context.clearTimeout(id);
    }
};
"""


def connector_zip(name: str) -> bytes:
    return bundle_zip(
        {
            "bundle.json": {"name": name, "version": "1.0.0"},
            "utils/Remind/component.json": {
                "name": f"{name}.utils.Remind",
                "inPorts": ["in"],
                "outPorts": ["out"],
            },
        },
        {"utils/Remind/Remind.js": REMIND_JS},
    )


async def test_a_timer_comes_back_through_the_delay_tiers_and_a_cleared_one_never(
    infra: IsolatedInfra,
) -> None:
    operator = auth_headers(CommonSettings(), Role.operator)
    name = f"acme{uuid.uuid4().hex[:8]}.reminders"
    async with registry_and_installer(infra, "jst") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner()
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            await publish(client, stack.registry_url, connector_zip(name))
            workspace = "jst"
            await create_workspace(client, stack.installer_url, workspace)
            await install(client, stack.installer_url, workspace, name, "reminders", config={})
            refs = await component_refs(client, stack.installer_url, workspace)
            flow_id = await _start_flow(
                runtime, operator, workspace, refs[f"{name}.utils.Remind"], "http://unused"
            )
            await _scenario(runtime, runtime_app, runner_app, workspace, flow_id)


async def _scenario(
    runtime: httpx.AsyncClient, app: Any, runner_app: Any, workspace: str, flow_id: str
) -> None:
    for what, clear in (("never", True), ("call ada", False)):
        hooked = await runtime.post(
            f"/v1/hooks/{workspace}/{flow_id}/hook", json={"what": what, "clear": clear}
        )
        assert hooked.status_code == 202, hooked.text

    async def reminded() -> bool:
        return bool(await node_logs(app, flow_id))

    await eventually(reminded, timeout=60)
    assert await node_logs(app, flow_id) == [{"reminder": {"what": "call ada"}}]
    async with runner_app.state.database.transaction() as session:
        statuses = sorted(
            (
                await session.execute(
                    sa.select(timers.c.status, timers.c.content).where(
                        timers.c.workspace == workspace
                    )
                )
            ).all()
        )
    assert [tuple(row) for row in statuses] == [
        ("cancelled", {"what": "never"}),
        ("fired", {"what": "call ada"}),
    ]


#: A look-alike of Appmixer's utils.timers.Timer (written here): ``start()`` sends the first
#: message and sets the first timer; the timer's ``receive`` sends the next. It exports no
#: ``tick()`` and is not ``tick: true``: the scheduler never polls it.
TIMER_JS = """
module.exports = {
    async start(context) {
        await context.sendJson({ tick: 'first' }, 'out');
        return context.setTimeout({ lastTick: 'first' }, 1500);
    },
    async receive(context) {
        if (context.messages.timeout) {
            return context.sendJson({ tick: 'timeout', after: context.messages.timeout.content }, 'out');
        }
    }
};
"""

#: A ``tick: true`` trigger: the only one of the two the scheduler polls.
POLL_JS = """
module.exports = { async tick(context) {} };
"""


async def test_start_sends_and_sets_timers_and_only_tick_components_are_polled(
    infra: IsolatedInfra,
) -> None:
    operator = auth_headers(CommonSettings(), Role.operator)
    name = f"acme{uuid.uuid4().hex[:8]}.timers"
    bundle = bundle_zip(
        {
            "bundle.json": {"name": name, "version": "1.0.0"},
            "utils/Timer/component.json": {"name": f"{name}.utils.Timer", "outPorts": ["out"]},
            "utils/Poll/component.json": {
                "name": f"{name}.utils.Poll",
                "tick": True,
                "outPorts": ["out"],
            },
        },
        {"utils/Timer/Timer.js": TIMER_JS, "utils/Poll/Poll.js": POLL_JS},
    )
    async with registry_and_installer(infra, "jsy") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner()
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            await publish(client, stack.registry_url, bundle)
            await create_workspace(client, stack.installer_url, "jsy")
            await install(client, stack.installer_url, "jsy", name, "timers", config={})
            refs = await component_refs(client, stack.installer_url, "jsy")
            definition = {
                "nodes": {
                    "timer": {"component": refs[f"{name}.utils.Timer"]},
                    "poll": {"component": refs[f"{name}.utils.Poll"]},
                    "sink": {"component": "core.log", "properties": {"message": "{{ payload }}"}},
                },
                "connections": [{"from": "timer", "to": "sink"}, {"from": "poll", "to": "sink"}],
            }
            created = await runtime.post(
                "/v1/workspaces/jsy/flows",
                json={"name": "t", "definition": definition},
                headers=operator,
            )
            assert created.status_code == 201, created.text
            flow_id = str(created.json()["id"])

            async def started() -> bool:
                response = await runtime.post(
                    f"/v1/workspaces/jsy/flows/{flow_id}/start", headers=operator
                )
                return response.status_code == 200

            await eventually(started, timeout=60)

            async def ticked_twice() -> bool:
                return len(await node_logs(runtime_app, flow_id)) >= 2

            await eventually(ticked_twice, timeout=60)
            assert await node_logs(runtime_app, flow_id) == [
                {"tick": "first"},
                {"tick": "timeout", "after": {"lastTick": "first"}},
            ]
            async with runtime_app.state.database.transaction() as session:
                polled = (
                    await session.execute(
                        sa.select(TriggerState.node_id, TriggerState.status).where(
                            TriggerState.flow_id == uuid.UUID(flow_id)
                        )
                    )
                ).all()
            # The Timer has no trigger state (never ticked, never "failing"); Poll has one.
            assert [tuple(row) for row in polled] == [("poll", "ok")]
