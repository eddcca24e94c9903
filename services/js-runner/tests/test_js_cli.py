"""``modyard js run`` and ``modyard js logs`` against a real runner process (module from the
real registry): a one-off call prints the component's outputs and logs; an unknown component
is refused with what the module has; a failing component exits 1 with its error."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from jsrunner_env import SHARED_CACHE, bundle_zip
from typer.testing import CliRunner

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.sdk.cli import app
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, service_process

pytestmark = pytest.mark.infra

GREET_JS = """
module.exports = {
    async receive(context) {
        const { name } = context.messages.in.content;
        if (!name) throw new context.CancelError('a name is needed');
        context.log('greeting', name);
        await context.sendJson({ hello: name, key: context.auth.apiKey }, 'out');
    }
};
"""


def bundle(name: str) -> bytes:
    files = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "people/Greet/component.json": {
            "name": f"{name}.people.Greet",
            "inPorts": ["in"],
            "outPorts": ["out"],
        },
    }
    return bundle_zip(files, {"people/Greet/Greet.js": GREET_JS})


async def test_js_run_and_logs(infra: IsolatedInfra) -> None:
    name = f"acme{uuid.uuid4().hex[:8]}.people"
    async with service_process(
        "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "reg_jscli"}
    ) as registry:
        published = await httpx.AsyncClient(
            headers=auth_headers(CommonSettings(), Role.operator)
        ).post(
            f"{registry.url}/v1/modules",
            content=bundle(name),
            headers={"content-type": "application/zip"},
        )
        assert published.status_code == 201, published.text
        env = {
            **infra.env(),
            "MODYARD_REGISTRY_URL": registry.url,
            "MODYARD_JS_RUNNER_DB_SCHEMA": "js_runner_jscli",
            "MODYARD_JS_RUNNER_CACHE_DIR": str(SHARED_CACHE),
            "MODYARD_JS_RUNNER_INSTALL_ON_EVENTS": "false",
        }
        async with service_process("js-runner", env) as runner:
            cli = CliRunner()

            def invoke(*args: str) -> tuple[int, str]:
                result = cli.invoke(app, [*args, "--url", runner.url])
                return result.exit_code, result.output

            code, out = await asyncio.to_thread(
                invoke,
                "js",
                "run",
                name,
                "Greet",
                "--version",
                "1.0.0",
                "--message",
                '{"name": "Ada"}',
                "--config",
                '{"apiKey": "k1"}',
                "--json",
            )
            assert code == 0, out
            answer = json.loads(out)
            assert answer["reply"] == {"outputs": {"out": [{"hello": "Ada", "key": "k1"}]}}
            assert [line["message"] for line in answer["logs"]] == ["greeting Ada"]

            code, out = await asyncio.to_thread(
                invoke, "js", "run", name, "Greet", "-v", "1.0.0", "--message", "{}"
            )
            assert code == 1
            assert "a name is needed" in out
            assert "not retried" in out

            code, out = await asyncio.to_thread(
                invoke, "js", "run", name, "Wave", "-v", "1.0.0", "--message", "{}"
            )
            assert code == 1
            assert "404" in out
            assert f"{name}.people.Greet" in out

            code, out = await asyncio.to_thread(invoke, "js", "logs", "--module", name, "--json")
            assert code == 0, out
            lines = [json.loads(line) for line in out.splitlines() if line.strip()]
            assert [line["message"] for line in lines] == ["greeting Ada"]
            code, out = await asyncio.to_thread(
                invoke, "js", "logs", "--module", "acme.other", "--json"
            )
            assert code == 0
            assert out.strip() == ""
