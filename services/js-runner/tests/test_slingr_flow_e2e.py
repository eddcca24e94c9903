"""A Slingr look-alike package (fixtures/slingr/relay) on the real stack: published to the
registry with ``version``, installed in two workspaces, its flow steps run by the runtime through
the broker and the JavaScript runner. ``sys.storage`` lands in each installation's own storage
at the installer; ``sys.events.triggerEvent`` starts a ``core.event`` flow of the same workspace
only; the installation's listeners answer at ``/v1/listeners/{ws}/{installation}/{path}``
(``webhookSync`` with its return value), not at another workspace's address; a step past its
limit is the runner's failure, kept after one try."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from slingr_env import PACKAGES
from stack_env import (
    component_refs,
    create_workspace,
    install,
    node_logs,
    registry_and_installer,
)

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.jsrunner.context import SLOT as RUNNER_SLOT
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra


def package_zip(name: str = "relay") -> bytes:
    buffer = io.BytesIO()
    root = PACKAGES / name
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, str(path.relative_to(root)))
    return buffer.getvalue()


async def _flow(
    runtime: httpx.AsyncClient,
    operator: dict[str, str],
    workspace: str,
    nodes: dict[str, Any],
    connections: list[dict[str, str]],
) -> str:
    definition = {
        "nodes": nodes,
        "connections": connections,
        "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 1},
    }
    flow = await runtime.post(
        f"/v1/workspaces/{workspace}/flows",
        json={"name": f"slingr-{uuid.uuid4().hex[:6]}", "definition": definition},
        headers=operator,
    )
    assert flow.status_code == 201, flow.text
    flow_id = str(flow.json()["id"])

    async def started() -> bool:
        response = await runtime.post(
            f"/v1/workspaces/{workspace}/flows/{flow_id}/start", headers=operator
        )
        return response.status_code == 200

    await eventually(started, timeout=60)
    return flow_id


def _through(ref: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """webhook → the step → log."""
    return (
        {
            "hook": {"component": "core.webhook"},
            "node": {"component": ref},
            "sink": {"component": "core.log", "properties": {"message": "{{ payload }}"}},
        },
        [{"from": "hook", "to": "node"}, {"from": "node", "to": "sink"}],
    )


async def test_storage_and_events_of_a_slingr_package_stay_in_their_workspace(
    infra: IsolatedInfra,
) -> None:
    operator = auth_headers(CommonSettings(), Role.operator)
    async with registry_and_installer(infra, "slingr") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner(egress_allow_loopback=True)
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            published = await client.post(
                f"{stack.registry_url}/v1/modules",
                # A version of its own: the runner's module cache is shared by test sessions,
                # and a name@version unpacked there once is taken as it is.
                params={"version": f"1.0.{uuid.uuid4().int % 10**9}"},
                content=package_zip(),
                headers={"content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            flows: dict[str, dict[str, str]] = {}
            for workspace in ("sla", "slb"):
                await create_workspace(client, stack.installer_url, workspace)
                await install(
                    client,
                    stack.installer_url,
                    workspace,
                    "relay",
                    "relay",
                    config={"apiUrl": "http://127.0.0.1:9", "token": f"token-{workspace}"},
                )
                refs = await component_refs(client, stack.installer_url, workspace)
                flows[workspace] = {}
                for step in ("remember", "announce"):
                    flows[workspace][step] = await _flow(
                        runtime, operator, workspace, *_through(refs[step])
                    )
                flows[workspace]["heard"] = await _flow(
                    runtime,
                    operator,
                    workspace,
                    {
                        "on": {"component": "core.event", "properties": {"type": "relay:pinged"}},
                        "sink": {
                            "component": "core.log",
                            "properties": {"message": "{{ payload.data }}"},
                        },
                    },
                    [{"from": "on", "to": "sink"}],
                )

            async def hook(workspace: str, step: str, body: Any) -> None:
                flow_id = flows[workspace][step]
                hooked = await runtime.post(f"/v1/hooks/{workspace}/{flow_id}/hook", json=body)
                assert hooked.status_code == 202, hooked.text

            async def logged(workspace: str, step: str, wanted: list[Any]) -> None:
                seen: list[Any] = []

                async def matches() -> bool:
                    seen[:] = await node_logs(runtime_app, flows[workspace][step])
                    return seen == wanted

                try:
                    await eventually(matches, timeout=90)
                except AssertionError as late:
                    raise AssertionError(
                        f"{workspace} {step}: {seen!r}, wanted {wanted!r}"
                    ) from late

            # Storage: each installation's own keys (the second workspace sees nothing of the first).
            await hook("sla", "remember", {"key": "k", "value": "one"})
            await logged("sla", "remember", [{"before": None, "after": {"value": "one"}}])
            await hook("slb", "remember", {"key": "k", "value": "two"})
            await logged("slb", "remember", [{"before": None, "after": {"value": "two"}}])
            await hook("sla", "remember", {"key": "k", "value": "three"})
            await logged(
                "sla",
                "remember",
                [
                    {"before": None, "after": {"value": "one"}},
                    {"before": {"value": "one"}, "after": {"value": "three"}},
                ],
            )

            # Events: heard by the core.event flow of the same workspace only.
            await hook("sla", "announce", {"note": "hello"})
            # The step's sys.logs line is in the flow's log, before what core.log logged.
            await logged(
                "sla",
                "announce",
                [
                    {"source": "sys.logs", "level": "info", "message": "announcing hello"},
                    {"announced": "hello"},
                ],
            )
            await logged("sla", "heard", [{"note": "hello"}])
            await logged("slb", "heard", [])
            # The package's own `type: 'package'` listener heard it too (it keeps it in storage).
            installation = (
                await client.get(f"{stack.installer_url}/v1/workspaces/sla/installations/relay")
            ).json()["id"]

            async def kept() -> bool:
                found = await client.get(
                    f"{stack.installer_url}/v1/installations/{installation}/storage/lastPing"
                )
                return found.status_code == 200 and found.json()["value"] == {"note": "hello"}

            await eventually(kept, timeout=60)

            # Listeners: one URL per installation; webhookSync answers the caller.
            ids = {}
            for workspace in ("sla", "slb"):
                found = await client.get(
                    f"{stack.installer_url}/v1/workspaces/{workspace}/installations/relay"
                )
                ids[workspace] = found.json()["id"]
            answered = await runtime.post(
                f"/v1/listeners/sla/{ids['sla']}/ping", json={"message": "hi"}
            )
            assert answered.status_code == 200, answered.text
            assert answered.json() == {"pong": "hi", "by": "Bearer token-sla"}
            # Another workspace's address of the same installation: nothing there.
            elsewhere = await runtime.post(
                f"/v1/listeners/slb/{ids['sla']}/ping", json={"message": "hi"}
            )
            assert elsewhere.status_code == 404, elsewhere.text
            unknown = await runtime.post(f"/v1/listeners/sla/{ids['sla']}/nowhere", json={})
            assert unknown.status_code == 404, (unknown.status_code, unknown.text)
            assert "no webhook listener for /nowhere" in unknown.json()["detail"]
            # A webhook listener triggering the package's event: the same workspace hears it.
            noted = await runtime.post(
                f"/v1/listeners/sla/{ids['sla']}/note", json={"who": "vendor"}
            )
            assert noted.status_code == 200, noted.text
            await logged(
                "sla", "heard", [{"note": "hello"}, {"from": "webhook", "data": {"who": "vendor"}}]
            )
            await logged("slb", "heard", [])


async def test_a_package_calls_its_dependency_s_functions_with_the_dependency_s_config(
    infra: IsolatedInfra,
) -> None:
    """``dependencies.tally.functions.math.add(…)`` from tallyapp's step runs in tally's own
    sandbox with the configuration of the tally installation tallyapp's install brought along."""
    operator = auth_headers(CommonSettings(), Role.operator)
    version = f"1.{uuid.uuid4().int % 10**9}.0"
    async with registry_and_installer(infra, "slingrdep") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner()
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            for name in ("tally", "tallyapp"):
                published = await client.post(
                    f"{stack.registry_url}/v1/modules",
                    params={"version": version},
                    content=package_zip(name),
                    headers={"content-type": "application/zip"},
                )
                assert published.status_code == 201, published.text
            await create_workspace(client, stack.installer_url, "sld")
            # Installing tallyapp installs tally (its dependency) with tally's default factor.
            await install(client, stack.installer_url, "sld", "tallyapp", "tallyapp", config={})
            refs = await component_refs(client, stack.installer_url, "sld")
            flow_id = await _flow(runtime, operator, "sld", *_through(refs["total"]))
            hooked = await runtime.post(f"/v1/hooks/sld/{flow_id}/hook", json={"a": 2, "b": 3})
            assert hooked.status_code == 202, hooked.text
            wanted = [{"added": {"sum": 5, "by": "tally"}, "scaled": 20}]
            seen: list[Any] = []

            async def logged() -> bool:
                seen[:] = await node_logs(runtime_app, flow_id)
                return seen == wanted

            try:
                await eventually(logged, timeout=90)
            except AssertionError as late:
                raise AssertionError(f"logged {seen!r}, wanted {wanted!r}") from late


async def test_a_step_past_its_limit_is_the_runner_s_failure_and_not_retried(
    infra: IsolatedInfra,
) -> None:
    """A step looping forever, in a flow whose policy retries failures: the runner stops it at
    its limit (1 s here; 30 s by default) and reports ``err_script_timeout``, which the runtime,
    still waiting (``JS_COMPONENT_TIMEOUT_SECONDS``, 40 s), keeps as unprocessed after one try."""
    operator = auth_headers(CommonSettings(), Role.operator)
    async with registry_and_installer(infra, "slingrspin") as stack:
        runtime_app = stack.runtime()
        runner_app = stack.runner(slingr_timeout_seconds=1)
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            published = await client.post(
                f"{stack.registry_url}/v1/modules",
                params={"version": f"1.1.{uuid.uuid4().int % 10**9}"},
                content=package_zip(),
                headers={"content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            await create_workspace(client, stack.installer_url, "sls")
            await install(
                client,
                stack.installer_url,
                "sls",
                "relay",
                "relay",
                config={"apiUrl": "http://127.0.0.1:9", "token": "t"},
            )
            refs = await component_refs(client, stack.installer_url, "sls")
            nodes, connections = _through(refs["spin"])
            flow = await runtime.post(
                "/v1/workspaces/sls/flows",
                json={
                    "name": "slingr-spin",
                    "definition": {
                        "nodes": nodes,
                        "connections": connections,
                        # A retryable failure would be tried again, up to 5 times.
                        "retry_policy": {
                            "base_delay_seconds": 1,
                            "multiplier": 1,
                            "max_attempts": 5,
                        },
                    },
                },
                headers=operator,
            )
            assert flow.status_code == 201, flow.text
            flow_id = str(flow.json()["id"])

            async def started() -> bool:
                response = await runtime.post(
                    f"/v1/workspaces/sls/flows/{flow_id}/start", headers=operator
                )
                return response.status_code == 200

            await eventually(started, timeout=60)
            hooked = await runtime.post(f"/v1/hooks/sls/{flow_id}/hook", json={})
            assert hooked.status_code == 202, hooked.text

            async def unprocessed() -> list[dict[str, Any]]:
                response = await runtime.get(
                    "/v1/unprocessed-messages", params={"flow": flow_id}, headers=operator
                )
                return list(response.json()["items"])

            async def kept() -> bool:
                return bool(await unprocessed())

            await eventually(kept, timeout=90)
            [item] = await unprocessed()
            assert item["node_id"] == "node"
            assert item["attempts"] == 1, item
            assert "did not finish within its 1 s limit and was stopped" in str(item["errors"])
            assert await node_logs(runtime_app, flow_id) == []


async def test_a_slingr_step_reads_its_configuration_that_no_request_carries(
    infra: IsolatedInfra,
) -> None:
    """The runtime's requests to the runner name the installation, never its configuration: the
    runner reads it, decrypted, from the installer for each call and hands it to the child
    alone. Two workspaces, two secrets: each step sees its own, no request holds either."""
    operator = auth_headers(CommonSettings(), Role.operator)
    secrets = {workspace: f"secret-{workspace}-{uuid.uuid4().hex}" for workspace in ("slc", "sle")}
    async with registry_and_installer(infra, "slingrcfg") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner()
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            # The requests as the runner takes them off its queue (the consumer's seam).
            runner = RUNNER_SLOT.of(runner_app).runner
            received: list[dict[str, Any]] = []
            handle = runner.handle

            async def recording(request: dict[str, Any]) -> dict[str, Any]:
                received.append(request)
                return await handle(request)

            runner.handle = recording  # type: ignore[method-assign]
            published = await client.post(
                f"{stack.registry_url}/v1/modules",
                params={"version": f"1.1.{uuid.uuid4().int % 10**9}"},
                content=package_zip(),
                headers={"content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            flows: dict[str, str] = {}
            for workspace, secret in secrets.items():
                await create_workspace(client, stack.installer_url, workspace)
                await install(
                    client,
                    stack.installer_url,
                    workspace,
                    "relay",
                    "relay",
                    config={"apiUrl": "http://127.0.0.1:9", "token": secret},
                )
                refs = await component_refs(client, stack.installer_url, workspace)
                flows[workspace] = await _flow(
                    runtime, operator, workspace, *_through(refs["reveal"])
                )
            for workspace, secret in secrets.items():
                hooked = await runtime.post(
                    f"/v1/hooks/{workspace}/{flows[workspace]}/hook", json={"go": 1}
                )
                assert hooked.status_code == 202, hooked.text

                async def revealed(workspace: str = workspace, secret: str = secret) -> bool:
                    logs = await node_logs(runtime_app, flows[workspace])
                    return logs == [{"token": secret, "authHeader": f"Bearer {secret}"}]

                await eventually(revealed, timeout=90)
            # A listener of the package reads it the same way.
            installation = (
                await client.get(f"{stack.installer_url}/v1/workspaces/slc/installations/relay")
            ).json()["id"]
            answered = await runtime.post(
                f"/v1/listeners/slc/{installation}/ping", json={"message": "hi"}
            )
            assert answered.status_code == 200, answered.text
            assert answered.json() == {"pong": "hi", "by": f"Bearer {secrets['slc']}"}

            steps = [request for request in received if request.get("component") == "reveal"]
            listeners = [request for request in received if request.get("port") == "listener"]
            assert {request["workspace"] for request in steps} == set(secrets)
            assert len(listeners) == 1
            for request in received:
                assert "config" not in request, request
                text = json.dumps(request)
                assert not any(secret in text for secret in secrets.values()), text


async def test_label_fields_and_webhook_events_as_slingr_s_official_packages_read_them(
    infra: IsolatedInfra,
) -> None:
    """The ``stack`` look-alike (slack/github shapes) installed: its ``webhooksUrl`` label
    (``@config.WEBHOOK_URL``) is the installation's listener address, the literal and expression
    labels have their values, and a webhook's ``event.data`` is Slingr's ``{body, headers,
    parameters, requestInfo}``."""
    operator = auth_headers(CommonSettings(), Role.operator)
    public = "https://hooks.modyard.example"
    async with registry_and_installer(infra, "slingrlbl") as stack:
        runtime_app = stack.runtime(component_timeout_seconds=60)
        runner_app = stack.runner(runtime_url=public)
        async with (
            in_process(runtime_app) as runtime,
            in_process(runner_app),
            httpx.AsyncClient(headers=operator, timeout=60) as client,
        ):
            published = await client.post(
                f"{stack.registry_url}/v1/modules",
                params={"version": f"1.2.{uuid.uuid4().int % 10**9}"},
                content=package_zip("stack"),
                headers={"content-type": "application/zip"},
            )
            assert published.status_code == 201, published.text
            await create_workspace(client, stack.installer_url, "slf")
            await install(
                client,
                stack.installer_url,
                "slf",
                "stack",
                "stack",
                config={"clientId": "cid-9", "apiKey": "k3y-eu2"},
            )
            installation = (
                await client.get(f"{stack.installer_url}/v1/workspaces/slf/installations/stack")
            ).json()["id"]
            address = f"{public}/v1/listeners/slf/{installation}"
            answers: list[httpx.Response] = []

            async def answered() -> bool:
                answers[:] = [
                    await runtime.post(f"/v1/listeners/slf/{installation}/labels", json={})
                ]
                return answers[0].status_code == 200

            await eventually(answered, timeout=60)
            assert answers[0].json() == {
                "hook": address,
                "base": "https://api.stack.example/v2",
                "dataCenter": "https://eu2.stack.example",
                "url": f"{address}/labels",
            }
            event = await runtime.post(
                f"/v1/listeners/slf/{installation}/stack",
                params={"page": "4"},
                json={"id": 11},
                headers={"X-Stack-Event": "issue"},
            )
            assert event.status_code == 200, event.text
            assert event.json() == {
                "type": "webhook",
                "id": 11,
                "kind": "issue",
                "page": "4",
                "method": "POST",
                "url": f"{address}/stack?page=4",
            }
