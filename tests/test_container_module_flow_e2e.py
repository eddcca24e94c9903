"""A flow node run by a deployed container module (the runtime's ``http`` executor), for real:
registry, installer and deployer processes, the runtime in process, an image built from busybox,
pushed to the local token-protected registry and run by dockerd.

The container serves a CGI script with busybox httpd: it answers the runtime's request with the
request's payload echoed back, in the module-worker reply format.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import zipfile
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.runtime.app import create_app
from modyard.runtime.models import NodeLog
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.deployer import (
    RegistryLogin,
    delete_from_registry,
    publish_test_image,
    remove_namespace,
)
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import (
    auth_headers,
    free_port,
    in_process,
    service_process,
)

pytestmark = pytest.mark.infra

WS = "containers"
#: The component's code: echo the request's payload on port ``out``, as a module worker answers.
CGI_SCRIPT = """#!/bin/sh
printf 'Content-Type: application/json\\r\\n\\r\\n'
request=$(head -c "$CONTENT_LENGTH")
printf '{"outputs":{"out":[{"echo":%s}]}}' "$request"
"""
SERVE_CGI = [
    "sh",
    "-c",
    'mkdir -p /www/cgi-bin && echo "$SCRIPT" > /www/cgi-bin/echo && chmod +x /www/cgi-bin/echo '
    "&& exec httpd -f -v -p 0.0.0.0:$PORT -h /www",
]


def module_zip(name: str) -> bytes:
    document = {
        "name": name,
        "version": "1.0.0",
        "kind": "connector",
        "components": [
            {
                "name": "Echo",
                "role": "action",
                # Runs in the deployment named after the module, at this path.
                "executor": {"type": "http", "extra": {"path": "/cgi-bin/echo"}},
                "out_ports": [{"name": "out"}],
            }
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.yaml", yaml.safe_dump(document))
    return buffer.getvalue()


async def test_a_deployed_container_module_runs_a_flow_node_and_a_suspended_one_is_retried(
    infra: IsolatedInfra,
) -> None:
    settings = CommonSettings()
    operator = auth_headers(settings, Role.operator)
    login = RegistryLogin.from_settings(settings)
    module = f"cgi-{uuid.uuid4().hex[:8]}"
    path = f"modyard-test-{module}/echo"
    namespace = f"t{uuid.uuid4().hex[:10]}"
    image = await publish_test_image(settings.docker_host, login, path, "1.0.0", SERVE_CGI)
    async with (
        service_process(
            "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "reg_ctr"}
        ) as registry,
        service_process(
            "deployer",
            {
                **infra.env(),
                "MODYARD_DEPLOYER_NAMESPACE": namespace,
                "MODYARD_DEPLOYER_STABLE_SECONDS": "1",
                # The module writes its CGI script to a tmpfs and httpd runs it from there.
                "MODYARD_DEPLOYER_TMPFS_EXEC": "true",
            },
        ) as deployer,
    ):
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "inst_ctr",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            runtime_settings = RuntimeSettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                installer_url=installer.url,
                deployer_url=deployer.url,
                db_schema="runtime_ctr",
                component_timeout_seconds=5,
            )
            app = create_app(runtime_settings)
            async with (
                in_process(app) as runtime,
                httpx.AsyncClient(headers=operator, timeout=60) as client,
            ):
                try:
                    await _scenario(
                        client,
                        runtime,
                        app,
                        operator,
                        registry.url,
                        installer.url,
                        deployer.url,
                        module,
                        image,
                        login,
                    )
                finally:
                    await remove_namespace(settings.docker_host, namespace)
                    await delete_from_registry(settings.image_registry_url, login, path, "1.0.0")


async def _scenario(
    client: httpx.AsyncClient,
    runtime: httpx.AsyncClient,
    app: Any,
    operator: dict[str, str],
    registry: str,
    installer: str,
    deployer: str,
    module: str,
    image: str,
    login: RegistryLogin,
) -> None:
    published = await client.post(
        f"{registry}/v1/modules",
        content=module_zip(module),
        headers={"content-type": "application/zip"},
    )
    assert published.status_code == 201, published.text
    assert (
        await client.post(f"{installer}/v1/workspaces", json={"slug": WS, "name": "C"})
    ).status_code == 201
    installed = await client.post(
        f"{installer}/v1/workspaces/{WS}/installations", json={"module": module, "slug": "echo"}
    )
    assert installed.status_code == 201, installed.text
    granted = await client.post(
        f"{installer}/v1/workspaces/{WS}/installations/echo/acl/grant-users"
    )
    assert granted.status_code == 201, granted.text
    created = await client.post(
        f"{deployer}/v1/deployments",
        json={
            "name": module,
            "image": image,
            "registry_host": login.host,
            "token_id": login.username,
            "token": login.password,
            "env": {"SCRIPT": CGI_SCRIPT},
            "port": free_port(),
            # The root file system is read-only: the CGI script is written to a tmpfs.
            "writable_paths": ["/www"],
        },
    )
    assert created.status_code == 201, created.text
    assert (await client.post(f"{deployer}/v1/deployments/{module}/deploy")).status_code == 202

    async def status_is(wanted: str) -> bool:
        found = (await client.get(f"{deployer}/v1/deployments/{module}")).json()
        return bool(found["status"] == wanted)

    await eventually(lambda: status_is("running"), timeout=60)

    definition = {
        "nodes": {
            "hook": {"component": "core.webhook"},
            "echo": {"component": "echo.Echo"},
            "sink": {
                "component": "core.log",
                "properties": {"message": "{{ payload.echo.payload }}"},
            },
        },
        "connections": [{"from": "hook", "to": "echo"}, {"from": "echo", "to": "sink"}],
        "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 300},
    }
    flow = await runtime.post(
        f"/v1/workspaces/{WS}/flows",
        json={"name": "ctr", "definition": definition},
        headers=operator,
    )
    assert flow.status_code == 201, flow.text
    flow_id = flow.json()["id"]

    async def started() -> bool:
        response = await runtime.post(
            f"/v1/workspaces/{WS}/flows/{flow_id}/start", headers=operator
        )
        return response.status_code == 200

    await eventually(started, timeout=60)  # once the runtime has heard of the installation

    async def logs() -> list[Any]:
        async with app.state.database.transaction() as session:
            rows = await session.scalars(
                select(NodeLog.entry)
                .where(NodeLog.flow_id == uuid.UUID(flow_id))
                .order_by(NodeLog.id)
            )
            return list(rows)

    hooked = await runtime.post(f"/v1/hooks/{WS}/{flow_id}/hook", json={"order": 1})
    assert hooked.status_code == 202, hooked.text

    async def logged(expected: list[Any]) -> bool:
        return await logs() == expected

    await eventually(lambda: logged([{"order": 1}]), timeout=60)

    # Suspended: the node fails (retryable) and waits in the delay tiers; resumed, it goes through.
    assert (await client.post(f"{deployer}/v1/deployments/{module}/suspend")).status_code == 202
    await eventually(lambda: status_is("suspended"), timeout=60)
    await asyncio.sleep(6)  # past the runtime's endpoint cache
    hooked = await runtime.post(f"/v1/hooks/{WS}/{flow_id}/hook", json={"order": 2})
    assert hooked.status_code == 202
    await asyncio.sleep(3)
    assert await logs() == [{"order": 1}]
    assert (await client.post(f"{deployer}/v1/deployments/{module}/resume")).status_code == 202
    try:
        await eventually(lambda: logged([{"order": 1}, {"order": 2}]), timeout=180)
    except AssertionError as late:
        deployment = (await client.get(f"{deployer}/v1/deployments/{module}")).json()
        failed = await runtime.get(
            "/v1/unprocessed-messages", params={"flow": flow_id}, headers=operator
        )
        raise AssertionError(
            f"not delivered; deployment {deployment}, unprocessed {failed.text}"
        ) from late
    unprocessed = await runtime.get(
        "/v1/unprocessed-messages", params={"flow": flow_id}, headers=operator
    )
    assert unprocessed.json()["items"] == []
