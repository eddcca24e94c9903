"""Module executors: how a module's answer becomes outputs or a classified error. The ``http``
executor talks to a real server on loopback; only the deployer's lookup is stood in for (the
end-to-end test with the real deployer and dockerd is tests/test_container_module_flow_e2e.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modyard.runtime.components.base import ComponentError
from modyard.runtime.deployer_client import DeployerClient
from modyard.runtime.executors import HttpExecutor, ModuleExecutors, outputs_of
from modyard.runtime.models import InstalledComponent
from modyard.runtime.settings import RuntimeSettings


def installed(executor: str = "http", **options: Any) -> InstalledComponent:
    return InstalledComponent(
        workspace="acme",
        slug="crm",
        component="Echo",
        installation_id=uuid.uuid4(),
        module="crm-module",
        version="1.0.0",
        role="action",
        executor=executor,
        spec={"name": "Echo", "executor_options": options},
        present=True,
    )


@pytest.mark.parametrize(
    ("reply", "message", "retryable"),
    [
        ({"error": {"message": "quota", "retryable": False, "status": 429}}, "quota", False),
        ({"error": {"message": "busy"}}, "busy", True),
        ({"outputs": {"out": {"not": "a list"}}}, "not lists per port", False),
        (["not", "an object"], "not an object", False),
    ],
)
def test_a_module_answer_that_is_an_error_or_malformed_is_a_component_error(
    reply: Any, message: str, retryable: bool
) -> None:
    with pytest.raises(ComponentError, match=message) as caught:
        outputs_of("crm-module", reply)
    assert caught.value.retryable is retryable


def test_outputs_are_lists_per_port() -> None:
    assert outputs_of("m", {"outputs": {"out": [1], "err": []}}) == {"out": [1], "err": []}
    assert outputs_of("m", {}) == {}


class FixedEndpoint(DeployerClient):
    """The deployer's lookup answered with a server of the test's own."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(RuntimeSettings())
        self.fixed = endpoint
        self.asked: list[str] = []
        self.forgotten: list[str] = []

    async def endpoint(self, deployment: str) -> str:
        self.asked.append(deployment)
        return self.fixed

    def forget(self, deployment: str) -> None:
        self.forgotten.append(deployment)


@pytest.fixture
async def module_server() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.json()
        if request.path == "/components/Echo":
            return web.json_response({"outputs": {"out": [{"echo": body["payload"]}]}})
        if request.path == "/refuse":
            return web.json_response(
                {"error": {"message": "no such customer", "retryable": False}}, status=404
            )
        return web.Response(status=503, text="overloaded")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), seen


async def test_the_http_executor_posts_the_request_to_the_deployment_and_reads_outputs(
    module_server: tuple[str, list[web.Request]],
) -> None:
    base, seen = module_server
    deployments = FixedEndpoint(base)
    executor = HttpExecutor(deployments, timeout_seconds=5)
    try:
        outputs = await executor.call(installed(), {"message_id": "m1", "payload": {"n": 1}})
        assert outputs == {"out": [{"echo": {"n": 1}}]}
        assert deployments.asked == ["crm-module"]  # the module's name by default
        assert seen[0].headers["x-modyard-message-id"] == "m1"

        with pytest.raises(ComponentError, match="no such customer") as refused:
            await executor.call(installed(path="/refuse", deployment="crm-eu"), {"payload": 1})
        assert (refused.value.retryable, refused.value.status) == (False, 404)
        assert deployments.asked[-1] == "crm-eu"

        with pytest.raises(ComponentError, match="answered 503") as overloaded:
            await executor.call(installed(path="overloaded"), {"payload": 1})
        assert (overloaded.value.retryable, overloaded.value.status) == (True, 503)
    finally:
        await executor.close()
        await deployments.close()


async def test_an_endpoint_that_does_not_answer_is_retried_and_looked_up_again() -> None:
    deployments = FixedEndpoint("http://127.0.0.1:9")  # discard port: nothing listens
    executor = HttpExecutor(deployments, timeout_seconds=5)
    try:
        with pytest.raises(ComponentError) as caught:
            await executor.call(installed(), {"payload": 1})
        assert caught.value.retryable is True
        assert deployments.forgotten == ["crm-module"]
    finally:
        await executor.close()
        await deployments.close()


async def test_a_component_with_an_executor_the_runtime_cannot_run_is_not_retried() -> None:
    deployments = FixedEndpoint("http://127.0.0.1:9")
    executors = ModuleExecutors(amqp=None, http=HttpExecutor(deployments, timeout_seconds=1))  # type: ignore[arg-type]
    with pytest.raises(ComponentError, match="'js' executor") as caught:
        await executors.call(installed("js"), {"payload": 1})
    assert caught.value.retryable is False
