"""``context.setTimeout`` in a flow on the real stack: the runner answers with the timer, the
runtime parks a ``timeout`` message on its delay tiers (RabbitMQ TTL queues: nothing sleeps),
the runner parks it again while the wait is not over, then the component runs with
``messages.timeout`` and its output goes on. A timer cleared in the same call never comes back.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from jsrunner_env import SHARED_CACHE
from sqlalchemy import select
from test_flow_e2e import _start_flow

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.common.testing.infra import IsolatedInfra
from modyard.common.testing.polling import eventually
from modyard.common.testing.services import auth_headers, in_process, service_process
from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.jsrunner.tables import timers
from modyard.runtime.app import create_app as create_runtime
from modyard.runtime.models import NodeLog
from modyard.runtime.settings import RuntimeSettings

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
    files = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "utils/Remind/component.json": {
            "name": f"{name}.utils.Remind",
            "inPorts": ["in"],
            "outPorts": ["out"],
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, document in files.items():
            archive.writestr(path, json.dumps(document))
        archive.writestr("utils/Remind/Remind.js", REMIND_JS)
    return buffer.getvalue()


async def test_a_timer_comes_back_through_the_delay_tiers_and_a_cleared_one_never(
    infra: IsolatedInfra,
) -> None:
    operator = auth_headers(CommonSettings(), Role.operator)
    name = f"acme{uuid.uuid4().hex[:8]}.reminders"
    async with service_process(
        "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "reg_jst"}
    ) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "inst_jst",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            runtime_app = create_runtime(
                RuntimeSettings(
                    database_url=infra.database_url,
                    amqp_url=infra.amqp_url,
                    installer_url=installer.url,
                    db_schema="runtime_jst",
                    component_timeout_seconds=60,
                )
            )
            runner_app = create_runner(
                JsRunnerSettings(
                    database_url=infra.database_url,
                    amqp_url=infra.amqp_url,
                    registry_url=registry.url,
                    installer_url=installer.url,
                    db_schema="js_runner_jst",
                    cache_dir=str(SHARED_CACHE),
                )
            )
            async with (
                in_process(runtime_app) as runtime,
                in_process(runner_app),
                httpx.AsyncClient(headers=operator, timeout=60) as client,
            ):
                published = await client.post(
                    f"{registry.url}/v1/modules",
                    content=connector_zip(name),
                    headers={"content-type": "application/zip"},
                )
                assert published.status_code == 201, published.text
                workspace = "jst"
                created = await client.post(
                    f"{installer.url}/v1/workspaces", json={"slug": workspace, "name": workspace}
                )
                assert created.status_code == 201, created.text
                installed = await client.post(
                    f"{installer.url}/v1/workspaces/{workspace}/installations",
                    json={"module": name, "slug": "reminders", "config": {}},
                )
                assert installed.status_code == 201, installed.text
                granted = await client.post(
                    f"{installer.url}/v1/workspaces/{workspace}/installations/reminders/acl/grant-users"
                )
                assert granted.status_code == 201, granted.text
                refs = {
                    item["name"]: item["ref"]
                    for item in (
                        await client.get(f"{installer.url}/v1/workspaces/{workspace}/components")
                    ).json()
                }
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

    async def logs() -> list[Any]:
        async with app.state.database.transaction() as session:
            rows = await session.scalars(
                select(NodeLog.entry)
                .where(NodeLog.flow_id == uuid.UUID(flow_id))
                .order_by(NodeLog.id)
            )
            return list(rows)

    async def reminded() -> bool:
        return bool(await logs())

    await eventually(reminded, timeout=60)
    assert await logs() == [{"reminder": {"what": "call ada"}}]
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
