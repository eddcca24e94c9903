"""Module versions are installed when a workspace installs them (the installer's event), npm
dependency included, and a warm child is started: the first call does not start one. Two
workspaces installing the same version share one installed tree and one child."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from jsrunner_env import SHARED_CACHE, bundle_zip
from stack_env import create_workspace, install, publish, registry_and_installer

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.jsrunner.context import SLOT
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

COUNT_JS = """
const ms = require('ms');
module.exports = {
    async receive(context) {
        await context.sendJson({ window: ms(context.messages.in.content.ms), pid: process.pid }, 'out');
    }
};
"""


def bundle(name: str) -> bytes:
    files: dict[str, Any] = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "timing/Window/component.json": {
            "name": f"{name}.timing.Window",
            "inPorts": ["in"],
            "outPorts": ["out"],
        },
        "timing/Window/package.json": {
            "name": "window",
            "version": "1.0.0",
            "dependencies": {"ms": "2.1.3"},
        },
    }
    return bundle_zip(files, {"timing/Window/Window.js": COUNT_JS})


async def test_an_installed_version_is_ready_and_warm_before_its_first_call(
    infra: IsolatedInfra,
) -> None:
    operator = auth_headers(CommonSettings(), Role.operator)
    name = f"acme{uuid.uuid4().hex[:8]}.timing"
    async with registry_and_installer(infra, "jsahead") as stack:
        runner_app = stack.runner()
        async with (
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            await publish(client, stack.registry_url, bundle(name))
            runner = SLOT.of(runner_app).runner
            assert not [c for c in runner.pool.children() if c.spec.module == name]
            for workspace in ("aha", "ahb"):
                await create_workspace(client, stack.installer_url, workspace)
                # Installed only: nobody needs to be granted it for the runner to prepare it.
                await install(
                    client, stack.installer_url, workspace, name, "timing", grant_users=False
                )

            def warm() -> list[Any]:
                return [c for c in runner.pool.children() if c.spec.module == name]

            async def prepared() -> bool:
                return len(warm()) == 1

            await eventually(prepared, timeout=120)
            [child] = warm()
            installed_dirs = list((SHARED_CACHE / "modules").glob(f"{name}@1.0.0-*"))
            assert len(installed_dirs) == 1
            assert (installed_dirs[0] / "timing/Window/node_modules/ms").is_dir()
            started = runner.pool.started

            reply = await runner.handle(
                {
                    "module": name,
                    "version": "1.0.0",
                    "component": f"{name}.timing.Window",
                    "port": "in",
                    "payload": {"ms": 60000},
                    "workspace": "aha",
                }
            )
            # Answered by the child started ahead, in its namespace (pid 1 there): no new one.
            assert reply["outputs"]["out"][0]["window"] == "1m"
            assert runner.pool.started == started
            assert warm() == [child]
