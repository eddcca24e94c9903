"""The runner on a broker user of its own with exactly the permissions docs/js-runner.md gives it
for production: it declares its queues, takes requests, hears the installer's events and
answers; the runtime takes js answers from that user only."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from jsrunner_env import bundle_zip
from stack_env import create_workspace, install, node_logs, publish, registry_and_installer

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.dev.rabbitmq import js_runner_permissions
from modyard.jsrunner.context import SLOT
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

#: docs/js-runner.md, "Deployment" (the dev infrastructure's user has the same).
PERMISSIONS = js_runner_permissions()

DOUBLE_JS = """
module.exports = { async receive(context) {
    await context.sendJson({ doubled: context.messages.in.content.n * 2 }, 'out');
} };
"""


def bundle(name: str) -> bytes:
    component = {"name": f"{name}.math.Double", "inPorts": ["in"], "outPorts": ["out"]}
    return bundle_zip(
        {
            "bundle.json": {"name": name, "version": "1.0.0"},
            "math/Double/component.json": component,
        },
        {"math/Double/Double.js": DOUBLE_JS},
    )


async def test_the_runner_works_on_its_own_broker_user(infra: IsolatedInfra) -> None:
    user, password = f"js-runner-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    async with httpx.AsyncClient(
        base_url=infra.management_url, auth=(infra.amqp_user, infra.amqp_password), timeout=30
    ) as management:
        created = await management.put(
            f"/api/users/{quote(user, safe='')}", json={"password": password, "tags": ""}
        )
        assert created.status_code in (201, 204), created.text
        granted = await management.put(
            f"/api/permissions/{quote(infra.vhost, safe='')}/{quote(user, safe='')}",
            json=PERMISSIONS,
        )
        assert granted.status_code in (201, 204), granted.text
    parts = urlsplit(infra.amqp_url)
    own_url = urlunsplit(
        parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5672}")
    )
    operator = auth_headers(CommonSettings(), Role.operator)
    name = f"acme{uuid.uuid4().hex[:8]}.math"
    async with registry_and_installer(infra, "jsuser") as stack:
        runtime_app = stack.runtime(js_runner_broker_user=user)
        runner_app = stack.runner(amqp_url=own_url)
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            await publish(client, stack.registry_url, bundle(name))
            await create_workspace(client, stack.installer_url, "jsu")
            await install(client, stack.installer_url, "jsu", name, "math")
            runner = SLOT.of(runner_app).runner

            async def warm() -> bool:
                # The installer's event reached the runner through its own event queue.
                return any(c.spec.module == name for c in runner.pool.children())

            await eventually(warm, timeout=90)
            definition = {
                "nodes": {
                    "hook": {"component": "core.webhook"},
                    "double": {"component": "math.math.Double"},
                    "sink": {
                        "component": "core.log",
                        "properties": {"message": "{{ payload }}"},
                    },
                },
                "connections": [
                    {"from": "hook", "to": "double"},
                    {"from": "double", "to": "sink"},
                ],
            }
            flow = await runtime.post(
                "/v1/workspaces/jsu/flows",
                json={"name": "double", "definition": definition},
                headers=operator,
            )
            assert flow.status_code == 201, flow.text
            flow_id = flow.json()["id"]

            async def started() -> bool:
                response = await runtime.post(
                    f"/v1/workspaces/jsu/flows/{flow_id}/start", headers=operator
                )
                return response.status_code == 200

            await eventually(started, timeout=60)
            hooked = await runtime.post(f"/v1/hooks/jsu/{flow_id}/hook", json={"n": 21})
            assert hooked.status_code == 202, hooked.text

            async def logged() -> bool:
                return await node_logs(runtime_app, flow_id) == [{"doubled": 42}]

            await eventually(logged, timeout=60)
