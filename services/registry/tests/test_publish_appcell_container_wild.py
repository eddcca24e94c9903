"""AppCell cells and container modules shaped like public ones (issue 19: AppCell cases 2-5,
container cases 1-3) publish through the real registry (PostgreSQL, RabbitMQ, in process), and
their defective twins are 422 problems that name the file and JSON pointer and store nothing.

The fixtures are the adapters' look-alikes, ``appcell-renamed-registrar`` and
``container-oneentry-digest`` in ``modyard.modules.examples``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from modyard.common.auth import Role
from modyard.modules.examples import example_files
from modyard.modules.formats.appcell_platform import platform_schemas
from modyard.registry.app import create_app
from modyard.registry.models import Module
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra

DIGEST = "sha256:4f1c3e6b2a9d8c7e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60"


class Registry:
    def __init__(self, client: httpx.AsyncClient, app: Any, settings: RegistrySettings) -> None:
        self.client = client
        self.app = app
        self.operator = auth_headers(settings, Role.operator)
        self.user = auth_headers(settings, Role.user)

    async def publish(self, files: dict[str, bytes]) -> httpx.Response:
        return await self.client.post(
            "/v1/modules",
            files={"archive": ("module.zip", make_zip(files), "application/zip")},
            headers=self.operator,
        )

    async def modules(self) -> int:
        async with self.app.state.database.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(Module)) or 0)


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[Registry]:
    settings = RegistrySettings(database_url=infra.database_url, amqp_url=infra.amqp_url)
    app = create_app(settings)
    async with in_process(app) as client:
        yield Registry(client, app, settings)


def cell_files() -> dict[str, bytes]:
    return dict(example_files("appcell-renamed-registrar"))


def container_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        example_files("container-oneentry-digest")["container.json"]
    )
    return document


async def test_the_look_alike_cell_publishes_and_reads_back(registry: Registry) -> None:
    files = cell_files()
    response = await registry.publish(files)
    assert response.status_code == 201, response.text
    manifest = response.json()["manifest"]
    assert (manifest["name"], manifest["format"], manifest["kind"]) == (
        "acmeregistrarcell",
        "appcell",
        "cell",
    )
    # Case 3: the core interfaces are the platform's; the archive carries none.
    assert [(p["path"], p["source"], p["digest"]) for p in manifest["cell"]["implements"]] == [
        (f"core/{name}.schema.json", "platform", platform_schemas()[name].digest)
        for name in ("service", "availability", "renewable")
    ]
    # Case 4.
    assert manifest["requires"]["extra"]["scope"] == ["customer_product", "customer", "email"]
    # Case 2.
    actions = {a["extra"]["key"]: a for a in manifest["cell"]["actions"]}
    assert actions["transfer"]["extra"]["listed_in_resources"] is False
    # Case 5: a URL naming the cell it was renamed from is served from the archive, pinned.
    pinned = actions["transfer"]["payload"]["pinned"]
    assert pinned["path"] == "schema/domain/transfer.payload.json"
    served = await registry.client.get(
        f"/v1/modules/acmeregistrarcell/versions/1.0.0/files/{pinned['path']}",
        headers=registry.user,
    )
    assert served.status_code == 200
    assert pinned["digest"] == "sha256:" + hashlib.sha256(served.content).hexdigest()
    (backend,) = manifest["cell"]["ui"]["backendModules"]
    assert backend["path"] == "schema/ui/controller.js"
    stored = await registry.client.get(
        "/v1/modules/acmeregistrarcell/versions/1.0.0", headers=registry.user
    )
    assert stored.json()["manifest"] == manifest


@pytest.mark.parametrize(
    ("path", "change", "pointer", "says"),
    [
        (
            "plugins.json",
            lambda d: d["plugin"]["AcmeRegistrar"]["implements"].append(
                "https://repository.appcell.io/core/teleport.schema"
            ),
            "/plugin/AcmeRegistrar/implements/3",
            "none of the AppCell platform interfaces",
        ),
        (
            "AppCell.json",
            lambda d: d["require"].update(scope=["customer", 7]),
            "/require/scope/1",
            "not a scope name",
        ),
        (
            "Ui.json",
            lambda d: d["frontendModules"].append(
                {"url": "https://repository.appcell.io/acmeregistrarcell/schema/ui/tabs.js"}
            ),
            "/frontendModules/1/url",
            "which the archive lacks",
        ),
        (
            "plugins.json",
            lambda d: d["plugin"]["AcmeRegistrar"]["actions"]["renew"][0].update(
                resource="Contact"
            ),
            "/plugin/AcmeRegistrar/actions/renew/0/resource",
            "'Contact' is not a resource in resources.json",
        ),
    ],
)
async def test_a_defective_cell_is_a_422_naming_file_and_pointer_and_stores_nothing(
    registry: Registry, path: str, change: Any, pointer: str, says: str
) -> None:
    files = cell_files()
    document = json.loads(files[path])
    change(document)
    files[path] = json.dumps(document).encode()
    files["AppCell.json"] = files["AppCell.json"].replace(b'"1.0.0"', b'"1.0.1"')
    before = await registry.modules()
    response = await registry.publish(files)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["file"], error["pointer"]) == (path, pointer)
    assert says in error["detail"]
    assert await registry.modules() == before
    missing = await registry.client.get(
        "/v1/modules/acmeregistrarcell/versions/1.0.1", headers=registry.user
    )
    assert missing.status_code == 404


async def test_the_look_alike_container_publishes_as_json_with_its_digest(
    registry: Registry,
) -> None:
    response = await registry.client.post(
        "/v1/modules", json=container_document(), headers=registry.operator
    )
    assert response.status_code == 201, response.text
    container = response.json()["manifest"]["container"]
    assert (container["image"], container["default_tag"], container["digest"]) == (
        "registry.gitlab.com/acme-oneentry/catalog-sync",
        "prod-v1.2.0",
        DIGEST,
    )
    assert [(v["name"], v["secret"], v["default"]) for v in container["env"]] == [
        ("API_URL", False, "https://api.acme.example"),
        ("GITLAB_TOKEN", True, None),
        ("SYNC_INTERVAL_SECONDS", False, "300"),
        ("DRY_RUN", False, "false"),
    ]
    shown = await registry.client.get(
        "/v1/modules/acme-catalog-sync/versions/1.2.0", headers=registry.user
    )
    assert "glpat-" not in shown.text


async def test_the_zipped_look_alike_container_publishes(registry: Registry) -> None:
    document = {**container_document(), "name": "acme-catalog-sync-zipped"}
    response = await registry.publish({"container.json": json.dumps(document).encode()})
    assert response.status_code == 201, response.text
    assert response.json()["manifest"]["container"]["digest"] == DIGEST


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"image": "registry.gitlab.com/acme/x@sha256:" + "a" * 63}, "/image"),
        ({"env": {"API_URL": "x", "1BAD": "y"}}, "/env/1BAD"),
        ({"env": [{"name": "GITLAB_TOKEN", "secret": "yes"}]}, "/env/0/secret"),
    ],
)
async def test_a_defective_container_is_a_422_naming_the_pointer_and_stores_nothing(
    registry: Registry, change: dict[str, Any], pointer: str
) -> None:
    document = {**container_document(), "name": "acme-defective", **change}
    before = await registry.modules()
    response = await registry.client.post("/v1/modules", json=document, headers=registry.operator)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["file"], error["pointer"]) == ("(body)", pointer)
    assert await registry.modules() == before


async def test_a_container_in_oneentrys_form_publishes_with_its_release_tags_version(
    registry: Registry,
) -> None:
    document = {
        "name": "oneentry-form-module",
        "image": "registry.gitlab.com/oneentry-skd-js/test-module",
        "tag": "prod-v1.0.10",
        "registry_host": "registry.gitlab.com",
        "port": 3000,
        "env": [{"name": "DEVELOPER_API_HOST", "value": "https://example.oneentry.cloud"}],
    }
    response = await registry.client.post("/v1/modules", json=document, headers=registry.operator)
    assert response.status_code == 201, response.text
    manifest = response.json()["manifest"]
    assert manifest["version"] == "1.0.10"
    assert (manifest["container"]["default_tag"], manifest["container"]["ports"]) == (
        "prod-v1.0.10",
        [3000],
    )
    # Without a release tag, the request names the version.
    untagged = {**document, "name": "oneentry-form-untagged", "tag": "main"}
    refused = await registry.client.post("/v1/modules", json=untagged, headers=registry.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["pointer"] == "/version"
    named = await registry.client.post(
        "/v1/modules?version=v2.1.0", json=untagged, headers=registry.operator
    )
    assert named.status_code == 201, named.text
    assert named.json()["manifest"]["version"] == "2.1.0"


async def test_registry_credentials_in_a_container_document_are_refused_and_not_stored(
    registry: Registry,
) -> None:
    document = {**container_document(), "name": "acme-with-token", "token": "glpat-secret"}
    before = await registry.modules()
    response = await registry.client.post("/v1/modules", json=document, headers=registry.operator)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["pointer"] == "/token"
    assert "glpat-secret" not in response.text
    assert await registry.modules() == before
