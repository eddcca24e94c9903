"""Prisme.ai imports end to end (registry and installer processes, the runtime in process, the
real broker): one nested instance per import, an import slug with a space, and a refusal from
the installer as a final outcome of an installation event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from runtime_env import registry_and_installer
from test_apps_e2e import Env

from modyard.common.auth import Role
from modyard.common.bus.envelope import new_event
from modyard.contracts.events.installer import INSTALLATION_CREATED
from modyard.runtime.app import create_app
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    async with registry_and_installer(infra, "app_imports") as (registry, installer):
        settings = RuntimeSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            db_schema="runtime_app_imports",
            installer_url=installer.url,
            registry_url=registry.url,
        )
        app = create_app(settings)
        async with in_process(app) as client:
            yield Env(
                client, app, registry.url, installer.url, auth_headers(settings, Role.operator)
            )


# Look-alikes of Prisme.ai's Collection (one instance per collection, its name in the config)
# and of its standard app Custom Code, imported and called as 'Custom Code'.
COLLECTION = {
    "index.yml": "name: Collection\nslug: Collection\n"
    "config:\n  schema:\n    collectionName:\n      type: string\n  value: {}\n",
    "automations/find.yml": "slug: find\noutput: 'found in {{config.collectionName}}'\ndo: []\n",
}
CUSTOM_CODE = {
    "index.yml": "name: Custom Code\nslug: Custom Code\n",
    "automations/run.yml": "slug: run\narguments:\n  function:\n    type: string\n"
    "output: 'ran {{function}}'\ndo: []\n",
}
STORE = {
    "index.yml": "name: Prompt Store\nslug: prompt-store\n",
    "imports/Counters.yml": "appSlug: Collection\nslug: Counters\n"
    "config:\n  collectionName: Counters\n",
    "imports/Messages.yml": "appSlug: Collection\nslug: Messages\n"
    "config:\n  collectionName: Messages\n",
    "imports/Custom Code.yml": "appSlug: Custom Code\nslug: Custom Code\n",
    "automations/both.yml": "slug: both\noutput: ['{{a}}', '{{b}}']\ndo:\n"
    "  - Counters.find:\n      output: a\n"
    "  - Messages.find:\n      output: b\n",
    "automations/code.yml": "slug: code\noutput: '{{r}}'\ndo:\n"
    "  - Custom Code.run:\n      function: clean\n      output: r\n",
}


async def publish(env: Env, files: dict[str, str]) -> None:
    published = await env.external(
        "POST",
        f"{env.registry}/v1/modules",
        params={"version": "1.0.0"},
        files={"archive": ("app.zip", make_zip(files), "application/zip")},
    )
    assert published.status_code == 201, published.text


async def test_two_imports_of_one_app_and_a_slug_with_a_space(env: Env) -> None:
    for files in (COLLECTION, CUSTOM_CODE, STORE):
        await publish(env, files)
    await env.workspace("store-ws")
    installed = await env.install("store-ws", "prompt-store")
    assert installed.status_code == 201, installed.text
    for slug in ("prompt-store.Counters", "prompt-store.Messages", "prompt-store.Custom Code"):
        nested = await env.wait_instance("store-ws", slug)
        assert nested["parent"] == "prompt-store"

    both = await env.run("store-ws", "prompt-store.both")
    assert both.status_code == 200, both.text
    assert both.json()["output"] == ["found in Counters", "found in Messages"]
    code = await env.run("store-ws", "prompt-store.code")
    assert code.status_code == 200, code.text
    assert code.json()["output"] == "ran clean"

    removed = await env.external(
        "DELETE", f"{env.installer}/v1/workspaces/store-ws/installations/prompt-store"
    )
    assert removed.status_code == 204, removed.text

    async def gone() -> bool:
        return not await env.instances("store-ws")

    await eventually(gone)


def refused_count(event_type: str) -> float:
    value = REGISTRY.get_sample_value(
        "modyard_events_consumed_total",
        {"service": "runtime", "consumer": "-", "type": event_type, "outcome": "refused"},
    )
    return value or 0.0


async def test_a_refusal_from_the_installer_dead_letters_the_event_at_once(env: Env) -> None:
    """The installer answers 4xx (here: a slug no installation can have): redelivering the event
    would meet the same answer, so it is dead-lettered on its first delivery."""
    await publish(
        env, {**COLLECTION, "index.yml": COLLECTION["index.yml"].replace("Collection", "Refused")}
    )
    await env.workspace("refused-ws")
    failed_before = (
        REGISTRY.get_sample_value(
            "modyard_events_consumed_total",
            {
                "service": "runtime",
                "consumer": "-",
                "type": INSTALLATION_CREATED,
                "outcome": "failed",
            },
        )
        or 0.0
    )
    before = refused_count(INSTALLATION_CREATED)
    event = new_event(
        source="/modyard/installer",
        type=INSTALLATION_CREATED,
        data={
            "workspace": "refused-ws",
            "slug": "not!addressable",
            "installation_id": str(uuid.uuid4()),
            "module": "refused",
            "version": "1.0.0",
            "format": "prismeai",
            "kind": "app",
            "pinned": False,
            "parent_id": None,
            "components": [],
        },
    )
    await env.app.state.bus.publish(event)
    await eventually(lambda: refused_count(INSTALLATION_CREATED) == before + 1, timeout=15)
    failed_after = (
        REGISTRY.get_sample_value(
            "modyard_events_consumed_total",
            {
                "service": "runtime",
                "consumer": "-",
                "type": INSTALLATION_CREATED,
                "outcome": "failed",
            },
        )
        or 0.0
    )
    assert failed_after == failed_before
    assert "not!addressable" not in await env.instances("refused-ws")
