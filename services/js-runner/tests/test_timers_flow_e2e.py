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
