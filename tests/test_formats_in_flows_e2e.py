"""A look-alike module of each format, as a new user would take it from publishing to a flow
(issue 19's proof): ``modyard publish`` (with ``--version`` where the format's files carry none),
installed through the installer under its default slug, the ``ref`` taken from
``GET …/components``, put in a flow that starts; where the runtime runs the component, a webhook
goes through and its output is checked.

Registry and installer run as processes, the runtime and the JavaScript runner in process, over
the real broker and database. The modules are small look-alikes written from each format's
documentation (tests/fixtures/formats, libs/modules tests fixtures and examples).

Not every format gives flow components: an AppCell cell is called through the gateway and a
container module is deployed by the deployer; both publish and install under their default slug
and list no components (asserted, so that a change there is seen).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from modyard.common.auth import Role
from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.modules.examples import example_dir
from modyard.runtime.app import create_app as create_runtime
from modyard.runtime.models import NodeLog
from modyard.runtime.settings import RuntimeSettings
from modyard.sdk.cell import ComponentCall, Worker, WorkerOptions
from modyard.sdk.cell import ModuleWorker as SdkModuleWorker
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import (
    auth_headers,
    in_process,
    run_modyard,
    service_process,
)

pytestmark = pytest.mark.infra

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "formats"
FORMAT_FIXTURES = ROOT / "libs" / "modules" / "tests" / "fixtures"
#: The JavaScript runner's base layer and npm cache, shared with its own tests' sessions.
JS_CACHE = Path("/tmp/modyard-js-runner-test-cache")  # noqa: S108 - shared on purpose
WS = "formats"


class Env:
    def __init__(
        self, runtime: httpx.AsyncClient, app: Any, registry: str, installer: str, headers: Any
    ) -> None:
        self.runtime, self.app = runtime, app
        self.registry, self.installer = registry, installer
        self.headers = headers

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(headers=self.headers, timeout=60) as client:
            return await client.request(method, url, **kwargs)

    async def publish(self, source: Path, *version: str) -> dict[str, Any]:
        """``modyard publish SOURCE [--version V] --json``, as an author runs it."""
        env = {"MODYARD_REGISTRY_URL": self.registry}
        published, _ = await run_modyard(env, "publish", str(source), *version, "--json")
        assert isinstance(published, dict), published
        return published

    async def install(self, module: str, config: dict[str, Any] | None = None) -> str:
        """Install under the default slug (none given) and open it to the workspace's users."""
        response = await self.external(
            "POST",
            f"{self.installer}/v1/workspaces/{WS}/installations",
            json={"module": module, "config": config or {}},
        )
        assert response.status_code == 201, response.text
        slug = str(response.json()["slug"])
        granted = await self.external(
            "POST", f"{self.installer}/v1/workspaces/{WS}/installations/{slug}/acl/grant-users"
        )
        assert granted.status_code == 201, granted.text
        return slug

    async def components(self, slug: str) -> dict[str, str]:
        """``component name -> ref`` of one installation, as ``GET …/components`` lists them."""
        response = await self.external("GET", f"{self.installer}/v1/workspaces/{WS}/components")
        assert response.status_code == 200, response.text
        return {
            item["name"]: item["ref"] for item in response.json() if item["installation"] == slug
        }

    async def started_flow(self, ref: str, properties: dict[str, Any] | None = None) -> str:
        """A flow webhook → ``ref`` → log, started (once the runtime has heard of the install)."""
        definition = {
            "nodes": {
                "hook": {"component": "core.webhook"},
                "node": {"component": ref, "properties": properties or {}},
                "sink": {"component": "core.log", "properties": {"message": "{{ payload }}"}},
            },
            "connections": [{"from": "hook", "to": "node"}, {"from": "node", "to": "sink"}],
            "retry_policy": {"base_delay_seconds": 1, "multiplier": 1, "max_attempts": 1},
        }
        created = await self.runtime.post(
            f"/v1/workspaces/{WS}/flows",
            json={"name": f"{ref}-{uuid.uuid4().hex[:6]}", "definition": definition},
            headers=self.headers,
        )
        assert created.status_code == 201, created.text
        flow_id = str(created.json()["id"])
        last: list[str] = []

        async def started() -> bool:
            response = await self.runtime.post(
                f"/v1/workspaces/{WS}/flows/{flow_id}/start", headers=self.headers
            )
            last[:] = [response.text]
            return response.status_code == 200

        try:
            await eventually(started, timeout=60)
        except AssertionError as late:
            raise AssertionError(f"the flow did not start: {last}") from late
        shown = await self.runtime.get(f"/v1/workspaces/{WS}/flows/{flow_id}", headers=self.headers)
        assert shown.json()["status"] == "running", shown.text
        return flow_id

    async def hook(self, flow_id: str, body: Any) -> None:
        hooked = await self.runtime.post(f"/v1/hooks/{WS}/{flow_id}/hook", json=body)
        assert hooked.status_code == 202, hooked.text

    async def logged(self, flow_id: str, wanted: list[Any], timeout: float = 60) -> None:
        seen: list[Any] = []

        async def matches() -> bool:
            async with self.app.state.database.transaction() as session:
                rows = await session.scalars(
                    select(NodeLog.entry)
                    .where(NodeLog.flow_id == uuid.UUID(flow_id))
                    .order_by(NodeLog.id)
                )
                seen[:] = list(rows)
            return seen == wanted

        try:
            await eventually(matches, timeout=timeout)
        except AssertionError as late:
            raise AssertionError(f"logged {seen!r}, wanted {wanted!r}") from late

    async def unprocessed(self, flow_id: str) -> list[dict[str, Any]]:
        response = await self.runtime.get(
            "/v1/unprocessed-messages", params={"flow": flow_id}, headers=self.headers
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])


@pytest.fixture(scope="module")
async def env(infra: IsolatedInfra) -> AsyncIterator[Env]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_formats"}
    async with service_process("registry", registry_env) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "installer_formats",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            settings = RuntimeSettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                installer_url=installer.url,
                registry_url=registry.url,
                db_schema="runtime_formats",
                component_timeout_seconds=60,
            )
            runtime_app = create_runtime(settings)
            runner_app = create_runner(
                JsRunnerSettings(
                    database_url=infra.database_url,
                    amqp_url=infra.amqp_url,
                    registry_url=registry.url,
                    installer_url=installer.url,
                    db_schema="js_runner_formats",
                    cache_dir=str(JS_CACHE),
                )
            )
            async with in_process(runtime_app) as runtime, in_process(runner_app):
                headers = auth_headers(settings, Role.operator)
                environment = Env(runtime, runtime_app, registry.url, installer.url, headers)
                created = await environment.external(
                    "POST", f"{installer.url}/v1/workspaces", json={"slug": WS, "name": "Formats"}
                )
                assert created.status_code == 201, created.text
                yield environment


async def test_native_module_runs_in_a_flow_under_its_dotted_default_slug(env: Env) -> None:
    published = await env.publish(FIXTURES / "native")
    assert (published["name"], published["version"]) == ("acme.notes", "1.0.0")
    slug = await env.install("acme.notes")
    assert slug == "acme.notes"
    refs = await env.components(slug)
    assert refs == {"Shout": "acme.notes.Shout"}

    credentials: dict[str, Any] = {}

    async def issued() -> bool:
        response = await env.runtime.post(
            f"/v1/workspaces/{WS}/installations/{slug}/worker-credentials", headers=env.headers
        )
        credentials.update(response.json() if response.status_code == 201 else {})
        return response.status_code == 201

    await eventually(issued)
    sdk = SdkModuleWorker("acme.notes")

    @sdk.component("Shout")
    async def shout(payload: Any, call: ComponentCall) -> Any:
        return {"text": str(payload["text"]).upper() + "!"}

    worker: Worker = sdk.worker(
        WorkerOptions(amqp_url=credentials["amqp_url"], queue=credentials["queue"])
    )
    await worker.start()
    try:
        flow_id = await env.started_flow(refs["Shout"])
        await env.hook(flow_id, {"text": "hello"})
        await env.logged(flow_id, [{"text": "HELLO!"}])
    finally:
        await worker.stop()


async def test_appmixer_bundle_runs_on_the_javascript_runner(env: Env) -> None:
    # Rooted at the bundle's own folder (how `appmixer pack` zips a module), three segments,
    # engine ">=6.0" and a changelog list: all issue 19 cases a real module has.
    published = await env.publish(FIXTURES / "appmixer")
    assert (published["name"], published["version"]) == ("globex.text.tools", "1.0.0")
    slug = await env.install("globex.text.tools")
    assert slug == "globex.text.tools"
    refs = await env.components(slug)
    # The Appmixer name is the ref under the default slug.
    assert refs == {"globex.text.tools.Upper": "globex.text.tools.Upper"}

    flow_id = await env.started_flow(refs["globex.text.tools.Upper"])
    await env.hook(flow_id, {"text": "shout"})
    await env.logged(flow_id, [{"text": "SHOUT"}], timeout=120)


async def test_slingr_package_step_runs_in_a_flow(env: Env, tmp_path: Path) -> None:
    """Slingr packages carry no version: ``--version`` gives it. Its flow step runs on the
    JavaScript runner (issue 21, docs/slingr.md): the webhook's message is the step's inputs, the
    step calls one of the package's scripts (``pkg.chatter.utils``) and reads the installation's
    configuration, and its return value goes on to the log."""
    original = FORMAT_FIXTURES / "slingr" / "chatter"
    await env.publish(original, "--version", "v0.9.0")
    # Its dependency on Slingr's `http` service, as every official package declares it, is the
    # platform's own (the runner's dependencies.http): it installs unedited, nothing to resolve.
    installed = await env.external(
        "POST",
        f"{env.installer}/v1/workspaces/{WS}/installations",
        json={
            "module": "chatter",
            "version": "0.9.0",
            "slug": "chatter-unedited",
            "config": {"apiToken": "t"},
        },
    )
    assert installed.status_code == 201, installed.text
    assert installed.json()["dependencies"] == []
    assert list(installed.json()["lock"]["modules"]) == ["chatter"]

    package = tmp_path / "chatter"
    shutil.copytree(original, package)
    # The fixture's step posts to the vendor's API (a label field, stored nowhere): this copy's
    # step formats the text with the package's script instead.
    (package / "flowSteps" / "sendChatter" / "step.js").write_text(
        "step.sendChatter = function (inputs) {\n"
        "    return {text: pkg.chatter.utils.formatMessage(inputs.text),\n"
        "            configured: config.get('apiToken') === 'token-of-formats'};\n"
        "};\n"
    )
    # A version of its own: the runner's module cache is shared by test sessions, and a
    # name@version unpacked there once (the fixture's own step, say) is taken as it is.
    version = f"1.{uuid.uuid4().int % 10**9}.0"
    published = await env.publish(package, "--version", f"v{version}")
    assert (published["name"], published["version"]) == ("chatter", version)
    slug = await env.install("chatter", {"apiToken": "token-of-formats"})
    assert slug == "chatter"
    refs = await env.components(slug)
    assert refs == {"sendChatter": "chatter.sendChatter"}

    flow_id = await env.started_flow(refs["sendChatter"])
    await env.hook(flow_id, {"text": "hi"})
    await env.logged(flow_id, [{"text": "[chatter] hi", "configured": True}], timeout=120)
    assert await env.unprocessed(flow_id) == []


async def test_prismeai_app_runs_in_a_flow_with_its_import_configured_by_expression(
    env: Env,
) -> None:
    """The helpdesk app imports ``knowledge-base`` with ``config: '{{config}}'``: both publish
    with ``--version``, install under the default slug (the import comes along), and the flow
    node runs the app's automation, which calls its import with the helpdesk's config."""
    for source, name in (
        (FIXTURES / "prismeai-kb", "knowledge-base"),
        (FORMAT_FIXTURES / "prismeai" / "helpdesk", "helpdesk"),
    ):
        published = await env.publish(source, "--version", "1.0.0")
        assert (published["name"], published["version"]) == (name, "1.0.0")
    slug = await env.install("helpdesk", {"greeting": "Bonjour"})
    assert slug == "helpdesk"
    refs = await env.components(slug)
    assert refs["answerTicket"] == "helpdesk.answerTicket"

    flow_id = await env.started_flow(refs["answerTicket"])
    await env.hook(flow_id, {"question": "printer"})
    await env.logged(flow_id, ["Bonjour printer"])


async def test_appcell_cell_and_container_module_install_with_no_flow_components(
    env: Env, tmp_path: Path
) -> None:
    """A cell (served through the gateway) and a container module (deployed by the deployer)
    publish with the CLI and install under their default slug; neither is a flow component."""
    cell = tmp_path / "cell"
    # Renamed from another cell, core/ interfaces it does not bundle, require.scope a list.
    shutil.copytree(example_dir("appcell-renamed-registrar"), cell)
    document = json.loads((cell / "AppCell.json").read_text())
    del document["version"]  # cells carry none in the wild: the request gives it
    (cell / "AppCell.json").write_text(json.dumps(document))
    published = await env.publish(cell, "--version", "v2.3.0")
    assert published["version"] == "2.3.0"
    # Pinned by digest, env as a mapping, a token whose default is not published.
    container = await env.publish(example_dir("container-oneentry-digest"))
    assert (container["name"], container["version"]) == ("acme-catalog-sync", "1.2.0")

    for module in (str(published["name"]), "acme-catalog-sync"):
        slug = await env.install(module)
        assert slug == module
        assert await env.components(slug) == {}
