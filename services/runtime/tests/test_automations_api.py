"""Automations in a workspace over the runtime's API, with the real PostgreSQL and RabbitMQ:
saving (checked), direct runs, endpoints, event triggers through the broker, waits, schedules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import modyard.modules.examples
from modyard.common.auth import Role
from modyard.runtime.app import create_app
from modyard.runtime.automations.models import AppInstance, AutomationWorkspace
from modyard.runtime.automations.schedules import run_due
from modyard.runtime.automations.service import AutomationService
from modyard.runtime.context import SLOT
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.runtime import FetchReceiver
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

WS = "autos"


class Env:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RuntimeSettings) -> None:
        self.client = client
        self.app = app
        self.headers = auth_headers(settings, Role.operator)

    @property
    def service(self) -> AutomationService:
        service = SLOT.of(self.app).automations
        assert isinstance(service, AutomationService)
        return service

    async def save(self, slug: str, definition: dict[str, Any], ws: str = WS) -> httpx.Response:
        response = await self.client.put(
            f"/v1/workspaces/{ws}/automations/{slug}", json=definition, headers=self.headers
        )
        self.service.programs.forget(ws)
        return response

    async def run(self, name: str, payload: dict[str, Any] | None = None, ws: str = WS) -> Any:
        return await self.client.post(
            f"/v1/workspaces/{ws}/automations/{name}/run",
            json={"payload": payload or {}},
            headers=self.headers,
        )


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="runtime_autos"
    )
    app = create_app(settings)
    async with in_process(app) as client:
        yield Env(client, app, settings)


async def test_saved_automation_runs_with_validated_arguments(env: Env) -> None:
    saved = await env.save(
        "greet",
        {
            "validateArguments": True,
            "arguments": {"name": {"type": "string"}},
            "output": {"greeting": "Hello {{name}}", "by": "{{run.user.id}}"},
            "do": [],
        },
    )
    assert saved.status_code == 201, saved.text
    assert (await env.save("greet", {**saved.json(), "description": "again"})).status_code == 200
    response = await env.run("greet", {"name": "Ada"})
    assert response.status_code == 200, response.text
    assert response.json()["output"] == {"greeting": "Hello Ada", "by": "test"}
    assert response.json()["app_instance"] is None

    refused = await env.run("greet", {"name": 3})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/arguments/name"


async def test_an_automation_that_cannot_run_is_refused_with_pointers(env: Env) -> None:
    response = await env.save(
        "broken",
        {"do": [{"set": {"name": "x", "value": "{{ nowhere.field + }}"}}, {"emit": {}}]},
    )
    assert response.status_code == 422
    pointers = [error["pointer"] for error in response.json()["errors"]]
    assert pointers == ["/body/do/0/set/value", "/body/do/1/emit/event"]
    assert (
        await env.client.get(f"/v1/workspaces/{WS}/automations/broken", headers=env.headers)
    ).status_code == 404


async def test_endpoint_serves_an_automation_with_body_and_query(env: Env) -> None:
    await env.save(
        "square",
        {
            "when": {"endpoint": True},
            "arguments": {"n": {"type": "number"}},
            "output": {"n": "{{body.n}}", "q": "{{payload.query.tag}}", "m": "{{payload.method}}"},
            "do": [],
        },
    )
    response = await env.client.post(
        f"/v1/workspaces/{WS}/endpoints/square?tag=x", json={"n": 4}, headers=env.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"n": 4, "q": "x", "m": "POST"}
    missing = await env.client.post(f"/v1/workspaces/{WS}/endpoints/nope", headers=env.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    # One automation per endpoint name.
    taken = await env.save("squared", {"when": {"endpoint": "square"}, "do": []})
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/endpoint-taken")
    metrics = (await env.client.get("/metrics")).text
    assert 'modyard_automation_runs_total{outcome="ok",trigger="endpoint"}' in metrics


async def test_endpoint_inputs_http_response_and_global_as_prismeai(env: Env) -> None:
    saved = await env.save(
        "accept",
        {
            "when": {"endpoint": True},
            "output": {
                "page": "{{query.page}}",
                "agent": '{{headers["agent-id"]}}',
                "auth": "{{headers.authorization}}",
                "method": "{{method}}",
                "path": "{{pathParams}}",
                "ws": "{{global.workspaceId}}",
                "api": "{{global.apiUrl}}",
                "self": "{{global.endpoints.accept}}",
            },
            "do": [{"set": {"name": "$http", "value": {"status": 202, "headers": {"x-id": 7}}}}],
        },
    )
    assert saved.status_code == 201, saved.text
    response = await env.client.post(
        f"/v1/workspaces/{WS}/endpoints/accept?page=2",
        json={},
        headers={**env.headers, "agent-id": "a1"},
    )
    assert response.status_code == 202, response.text
    assert response.headers["x-id"] == "7"
    # Where callers reach the runtime (MODYARD_HOOKS_PUBLIC_URL, else MODYARD_RUNTIME_URL).
    assert env.service.api_url
    base = env.service.api_url.rstrip("/") + "/v1"
    assert response.json() == {
        "page": "2",
        "agent": "a1",
        "auth": None,  # the caller's credentials are never handed to an automation
        "method": "POST",
        "path": {},
        "ws": WS,
        "api": base,
        "self": f"{base}/workspaces/{WS}/endpoints/accept",
    }
    # Prisme.ai's path endpoints: ``v1/users/:id`` serves v1/users/42 with pathParams.id.
    saved = await env.save(
        "getUser",
        {"when": {"endpoint": "v1/users/:id"}, "output": "{{pathParams.id}}", "do": []},
    )
    assert saved.status_code == 201, saved.text
    user = await env.client.get(f"/v1/workspaces/{WS}/endpoints/v1/users/42", headers=env.headers)
    assert user.status_code == 200, user.text
    assert user.json() == "42"
    # Without output, Prisme.ai answers {} (not null).
    await env.save("quiet", {"when": {"endpoint": True}, "do": []})
    quiet = await env.client.get(f"/v1/workspaces/{WS}/endpoints/quiet", headers=env.headers)
    assert quiet.status_code == 200
    assert quiet.json() == {}


async def test_a_disabled_automation_is_kept_but_never_runs(
    env: Env, receiver: FetchReceiver
) -> None:
    saved = await env.save(
        "paused",
        {
            "disabled": True,
            "when": {"endpoint": True, "events": ["pause.me"]},
            "output": "should not run",
            "do": [{"fetch": {"url": f"{receiver.url}/paused", "method": "POST"}}],
        },
    )
    assert saved.status_code == 201, saved.text
    assert saved.json()["disabled"] is True
    endpoint = await env.client.post(f"/v1/workspaces/{WS}/endpoints/paused", headers=env.headers)
    assert endpoint.status_code == 404
    assert endpoint.json()["type"].endswith("/automation-disabled")
    assert "disabled" in endpoint.json()["detail"]
    direct = await env.run("paused")
    assert direct.status_code == 404
    assert direct.json()["type"].endswith("/automation-disabled")
    await env.save("caller", {"do": [{"paused": {}}]})
    called = await env.run("caller")
    assert called.status_code == 404
    assert "disabled" in called.json()["detail"]
    # An enabled listener of the same event hears it; the disabled one never does.
    await env.save(
        "awake",
        {
            "when": {"events": ["pause.me"]},
            "do": [{"fetch": {"url": f"{receiver.url}/awake", "method": "POST", "body": {}}}],
        },
    )
    await env.save("pauser", {"do": [{"emit": {"event": "pause.me"}}]})
    assert (await env.run("pauser")).status_code == 200
    await receiver.wait_for("awake")
    assert receiver.seen("paused") == []


async def test_emitted_events_trigger_listeners_through_the_broker(
    env: Env, receiver: FetchReceiver
) -> None:
    await env.save(
        "listener",
        {
            "when": {"events": ["order.created"]},
            "do": [
                {
                    "fetch": {
                        "url": f"{receiver.url}/listener",
                        "method": "post",
                        "body": {"payload": "{{payload}}", "trigger": "{{run.trigger.event}}"},
                    }
                }
            ],
        },
    )
    await env.save(
        "creator",
        {"do": [{"emit": {"event": "order.created", "payload": {"id": "{{payload.id}}"}}}]},
    )
    response = await env.run("creator", {"id": 7})
    assert response.json()["emitted"] == [{"type": "order.created", "payload": {"id": 7}}]

    async def heard() -> bool:
        return bool(receiver.seen("listener"))

    await eventually(heard, timeout=20)
    assert receiver.seen("listener") == [{"payload": {"id": 7}, "trigger": "order.created"}]


async def test_wait_returns_the_event_another_run_emits(env: Env) -> None:
    await env.save(
        "waiter",
        {
            "output": "{{got}}",
            "do": [
                {
                    "wait": {
                        "oneOf": [{"event": "job.done", "filters": {"payload.job": 2}}],
                        "timeout": 20,
                        "output": "got",
                    }
                }
            ],
        },
    )
    await env.save("finisher", {"do": [{"emit": {"event": "job.done", "payload": "{{payload}}"}}]})
    waiting = asyncio.create_task(env.run("waiter"))

    async def registered() -> bool:
        return bool(env.service.hub._waiters.get(WS))

    await eventually(registered, timeout=20)
    await env.run("finisher", {"job": 1})  # filtered out
    await env.run("finisher", {"job": 2})
    response = await asyncio.wait_for(waiting, 30)
    assert response.json()["output"] == {"type": "job.done", "payload": {"job": 2}}


async def test_a_wait_hears_events_whichever_replica_consumes_them(
    env: Env, infra: IsolatedInfra
) -> None:
    """Each runtime process has its own queue of emitted events for its waits."""
    settings = RuntimeSettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, db_schema="runtime_autos"
    )
    other = create_app(settings)
    async with in_process(other) as replica:
        waiting = asyncio.create_task(env.run("waiter"))

        async def registered() -> bool:
            return bool(env.service.hub._waiters.get(WS))

        await eventually(registered, timeout=20)
        finished = await replica.post(
            f"/v1/workspaces/{WS}/automations/finisher/run",
            json={"payload": {"job": 2}},
            headers=env.headers,
        )
        assert finished.status_code == 200, finished.text
        response = await asyncio.wait_for(waiting, 30)
    assert response.json()["output"] == {"type": "job.done", "payload": {"job": 2}}


async def test_schedules_run_once_per_minute_whatever_the_number_of_runtimes(
    env: Env, receiver: FetchReceiver
) -> None:
    await env.save(
        "nightly",
        {
            "when": {"schedules": ["0 3 * * *"]},
            "do": [
                {
                    "fetch": {
                        "url": f"{receiver.url}/nightly",
                        "method": "post",
                        "body": {"trigger": "{{run.trigger.type}}"},
                    }
                }
            ],
        },
        ws="sched",
    )
    # A disabled automation's schedules never fire.
    await env.save(
        "paused-nightly",
        {
            "disabled": True,
            "when": {"schedules": ["0 3 * * *"]},
            "do": [{"fetch": {"url": f"{receiver.url}/paused-nightly", "method": "post"}}],
        },
        ws="sched",
    )
    three = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    # Two runtimes at the same minute: one claims it.
    counts = await asyncio.gather(run_due(env.service, three), run_due(env.service, three))
    assert sorted(counts) == [0, 1]
    assert await run_due(env.service, three.replace(minute=1)) == 0  # not due
    assert receiver.seen("nightly") == [{"trigger": "schedule"}]
    assert receiver.seen("paused-nightly") == []


async def test_settings_mask_secret_values(env: Env) -> None:
    response = await env.client.put(
        f"/v1/workspaces/{WS}/app-settings",
        json={
            "label": "Autos",
            "description": "d",
            "config": {
                "schema": {"KEY": {"type": "string", "secret": True}, "URL": {"type": "string"}},
                "value": {"KEY": "hunter2-secret", "URL": "https://x.test"},
            },
        },
        headers=env.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["config"]["value"] == {"KEY": "********", "URL": "https://x.test"}
    await env.save(
        "leaky",
        {"output": "{{config.KEY}}", "do": [{"emit": {"event": "x", "payload": "{{config}}"}}]},
    )
    ran = (await env.run("leaky")).json()
    assert ran["output"] == "[redacted]"
    assert ran["emitted"][0]["payload"]["KEY"] == "[redacted]"

    # Encrypted at rest; the mask sent back leaves the value as it was.
    async def stored() -> dict[str, Any]:
        async with env.app.state.database.transaction() as session:
            row = await session.get(AutomationWorkspace, WS)
            assert row is not None
            return dict(row.config_value)

    assert "hunter2-secret" not in str(await stored())
    again = await env.client.put(
        f"/v1/workspaces/{WS}/app-settings",
        json={
            "config": {
                "schema": {"KEY": {"type": "string", "secret": True}},
                "value": {"KEY": "********"},
            }
        },
        headers=env.headers,
    )
    assert again.status_code == 200, again.text
    env.service.programs.forget(WS)
    kept = await env.service.programs.get(WS)
    assert kept.config["KEY"] == "hunter2-secret"


async def test_a_prismeai_workspace_source_is_imported_whole(env: Env) -> None:
    examples = Path(modyard.modules.examples.__file__).parent
    source = yaml.safe_load((examples / "prismeai-toolbox" / "toolbox.yml").read_text())
    response = await env.client.put(
        "/v1/workspaces/toolbox-src/source", json=source, headers=env.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["automations"] == ["execute", "privateAutomation"]
    env.service.programs.forget("toolbox-src")
    ran = await env.run("privateAutomation", ws="toolbox-src")
    assert ran.json()["output"] == "https://api.mycompany.com"
    settings = await env.client.get("/v1/workspaces/toolbox-src/app-settings", headers=env.headers)
    assert settings.json()["label"] == "Toolbox"

    broken = {"automations": {"a": {"do": [{"set": {"name": "x", "value": "{{ nope ) }}"}}]}}}
    refused = await env.client.put(
        "/v1/workspaces/toolbox-src/source", json=broken, headers=env.headers
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["pointer"] == "/body/automations/a/do/0/set/value"
    # Nothing changed.
    listed = await env.client.get("/v1/workspaces/toolbox-src/automations", headers=env.headers)
    assert [item["slug"] for item in listed.json()["items"]] == ["execute", "privateAutomation"]


async def test_an_instance_shows_the_automations_it_cannot_run(env: Env) -> None:
    """An app version may hold an automation this runtime cannot compile (published by an older
    adapter, or by hand): the instance's other automations run, and the unusable one is
    listed on the instance with its problems (and logged), never dropped silently."""
    manifest = {
        "extra": {"prismeai": {"slug": "Collection"}},
        "automations": [
            {
                "slug": "find",
                "output": {"app": "{{run.appSlug}}", "instance": "{{run.appInstanceSlug}}"},
                "do": [],
            },
            {"slug": "byId", "when": {"endpoint": "v1/users/{id}"}, "do": []},
            {"slug": "off", "do": [], "extra": {"disabled": True}},
        ],
    }
    async with env.app.state.database.transaction() as session:
        session.add(
            AppInstance(
                workspace="apps-unusable",
                slug="Counters",
                installation_id=uuid.uuid4(),
                module="collection",
                version="1.0.0",
                manifest=manifest,
                config={},
            )
        )
    env.service.programs.forget("apps-unusable")
    listed = await env.client.get("/v1/workspaces/apps-unusable/apps", headers=env.headers)
    assert listed.status_code == 200, listed.text
    (instance,) = listed.json()["items"]
    assert [(a["slug"], a["disabled"]) for a in instance["automations"]] == [
        ("find", False),
        ("off", True),
    ]
    (unusable,) = instance["unusable"]
    assert unusable["slug"] == "byId"
    assert unusable["problems"][0]["pointer"] == "/when/endpoint"
    ran = await env.run("Counters.find", ws="apps-unusable")
    assert ran.status_code == 200, ran.text
    assert ran.json()["output"] == {"app": "Collection", "instance": "Counters"}
    assert (await env.run("Counters.off", ws="apps-unusable")).status_code == 404
