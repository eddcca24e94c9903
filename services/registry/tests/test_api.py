"""The registry's HTTP API against real PostgreSQL and RabbitMQ (in process)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from modyard.common.auth import Role
from modyard.modules.examples import example_dir, example_files
from modyard.registry.app import create_app
from modyard.registry.models import Module
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import make_zip, zip_with_entry
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra


class Registry:
    def __init__(self, client: httpx.AsyncClient, settings: RegistrySettings, app: Any) -> None:
        self.client = client
        self.settings = settings
        self.app = app
        self.operator = auth_headers(settings, Role.operator)
        self.user = auth_headers(settings, Role.user)

    async def publish_zip(
        self, data: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/modules",
            files={"archive": ("module.zip", data, "application/zip")},
            headers=headers or self.operator,
        )

    async def count_modules(self) -> int:
        async with self.app.state.database.transaction() as session:
            return int(await session.scalar(select(func.count()).select_from(Module)) or 0)

    async def outbox_types(self) -> list[str]:
        async with self.app.state.database.transaction() as session:
            rows = await session.execute(
                text("SELECT envelope->>'type', envelope->>'subject' FROM outbox ORDER BY seq")
            )
            return [f"{kind} {subject}" for kind, subject in rows]


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[Registry]:
    settings = RegistrySettings(
        database_url=infra.database_url, amqp_url=infra.amqp_url, max_archive_bytes=256 * 1024
    )
    app = create_app(settings)
    async with in_process(app) as client:
        yield Registry(client, settings, app)


def zip_fixture(name: str, **overrides: bytes) -> bytes:
    files: dict[str, bytes | str] = dict(example_files(name))
    files.update(overrides)
    return make_zip(files)


def native(version: str, name: str = "acme-weather", label: str = "ACME Weather") -> bytes:
    document = (example_dir("native-weather") / "modyard.yaml").read_text()
    document = document.replace("version: 1.4.0", f"version: {version}", 1)
    document = document.replace("name: acme-weather", f"name: {name}", 1).replace(
        "label: ACME Weather", f"label: {label}", 1
    )
    return zip_fixture("native-weather", **{"modyard.yaml": document.encode()})


async def test_publish_then_read_every_view(registry: Registry) -> None:
    published = await registry.publish_zip(native("1.4.0", name="views"))
    assert published.status_code == 201, published.text
    body = published.json()
    assert body["created"] is True
    assert body["digest"].startswith("sha256:")
    assert body["manifest"]["components"][1]["executor"]["entrypoint"] == "lib/forecast.js"
    assert published.headers["location"] == "/v1/modules/views/versions/1.4.0"

    version = (
        await registry.client.get("/v1/modules/views/versions/1.4.0", headers=registry.user)
    ).json()
    assert version["manifest"]["config"]["schema"]["required"] == ["apiKey"]
    assert version["manifest"]["components"][0]["description"].startswith("Fires when")

    index = (await registry.client.get("/v1/modules/views/index", headers=registry.user)).json()
    assert index["versions"] == [
        {
            "version": "1.4.0",
            "yanked": False,
            "digest": body["digest"],
            "dependencies": [
                {"name": "acme-http", "range": "^2.1.0", "type": "module"},
                {"name": "geo", "range": ">=1.0.0 <3", "type": "service"},
            ],
            "platform": "^1.0.0",
        }
    ]

    archive = await registry.client.get(
        "/v1/modules/views/versions/1.4.0/archive", headers=registry.user
    )
    assert archive.status_code == 200
    assert archive.headers["etag"] == f'"{body["digest"]}"'
    assert archive.headers["content-disposition"] == 'attachment; filename="views-1.4.0.zip"'
    cached = await registry.client.get(
        "/v1/modules/views/versions/1.4.0/archive",
        headers={**registry.user, "If-None-Match": archive.headers["etag"]},
    )
    assert cached.status_code == 304

    code = await registry.client.get(
        "/v1/modules/views/versions/1.4.0/files/lib/forecast.js", headers=registry.user
    )
    assert code.status_code == 200
    assert code.content == (example_dir("native-weather") / "lib" / "forecast.js").read_bytes()
    missing = await registry.client.get(
        "/v1/modules/views/versions/1.4.0/files/nope.txt", headers=registry.user
    )
    assert missing.status_code == 404


async def test_same_version_again_is_idempotent_only_for_the_same_bytes(registry: Registry) -> None:
    data = native("2.0.0", name="immutable")
    assert (await registry.publish_zip(data)).status_code == 201
    again = await registry.publish_zip(data)
    assert again.status_code == 200
    assert again.json()["created"] is False
    changed = await registry.publish_zip(native("2.0.0", name="immutable", label="Changed"))
    assert changed.status_code == 409
    assert changed.json()["type"].endswith("/version-exists")
    assert changed.json()["digest"] == again.json()["digest"]


async def test_versions_are_listed_newest_first_and_yank_marks_one(registry: Registry) -> None:
    for version in ("1.2.0", "1.10.0", "1.9.0"):
        assert (await registry.publish_zip(native(version, name="yankable"))).status_code == 201
    forbidden = await registry.client.delete(
        "/v1/modules/yankable/versions/1.10.0", headers=registry.user
    )
    assert forbidden.status_code == 403
    yanked = await registry.client.delete(
        "/v1/modules/yankable/versions/1.10.0",
        params={"reason": "leaks the api key"},
        headers=registry.operator,
    )
    assert yanked.status_code == 200
    assert yanked.json()["yanked"] is True
    assert (
        await registry.client.delete(
            "/v1/modules/yankable/versions/1.10.0", headers=registry.operator
        )
    ).status_code == 200

    detail = (await registry.client.get("/v1/modules/yankable", headers=registry.user)).json()
    assert [(v["version"], v["yanked"]) for v in detail["versions"]] == [
        ("1.10.0", True),
        ("1.9.0", False),
        ("1.2.0", False),
    ]
    assert detail["versions"][0]["yanked_reason"] == "leaks the api key"
    assert detail["latest_version"] == "1.9.0"
    still = await registry.client.get(
        "/v1/modules/yankable/versions/1.10.0/archive", headers=registry.user
    )
    assert still.status_code == 200
    events = await registry.outbox_types()
    assert "modyard.registry.module.yanked yankable@1.10.0" in events
    assert events.count("modyard.registry.module.yanked yankable@1.10.0") == 1
    assert "modyard.registry.module.published yankable@1.9.0" in events


async def test_container_module_is_published_as_json(registry: Registry) -> None:
    manifest = {
        "name": "echo-container",
        "version": "1.0.0",
        "image": "127.0.0.1:5000/modules/echo:1.0.0",
        "env": [{"name": "GREETING", "default": "hello"}],
    }
    response = await registry.client.post("/v1/modules", json=manifest, headers=registry.operator)
    assert response.status_code == 201, response.text
    assert response.json()["manifest"]["container"]["default_tag"] == "1.0.0"
    archive = await registry.client.get(
        "/v1/modules/echo-container/versions/1.0.0/archive", headers=registry.user
    )
    assert json.loads(archive.content) == manifest


async def test_search_filters_and_paginates(registry: Registry) -> None:
    for index in range(5):
        await registry.publish_zip(
            native("1.0.0", name=f"paged-{index}", label=f"Paginated thing {index}")
        )
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "q": "paginated",
            "limit": 2,
            "format": "native",
            "kind": "connector",
        }
        if cursor:
            params["cursor"] = cursor
        page = (
            await registry.client.get("/v1/modules", params=params, headers=registry.user)
        ).json()
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"paged-{index}" for index in range(5)]
    none = (
        await registry.client.get(
            "/v1/modules", params={"kind": "cell", "q": "paginated"}, headers=registry.user
        )
    ).json()
    assert none == {"items": [], "next_cursor": None}
    bad = await registry.client.get("/v1/modules", params={"cursor": "%%%"}, headers=registry.user)
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/invalid-cursor")


@pytest.mark.parametrize(
    ("data", "status", "slug"),
    [
        (
            zip_with_entry(__import__("zipfile").ZipInfo("../evil.js")),
            422,
            "archive-path-traversal",
        ),
        (b"not a zip at all", 422, "archive-invalid"),
        (make_zip({"README.md": "hello"}), 422, "unknown-format"),
        (
            make_zip({"modyard.yaml": "name: x\nversion: nope\nkind: connector\n"}),
            422,
            "invalid-manifest",
        ),
        (make_zip({"big.bin": bytes(range(256)) * 2048}, compression=0), 413, "archive-too-large"),
    ],
)
async def test_refused_uploads_say_why_and_store_nothing(
    registry: Registry, data: bytes, status: int, slug: str
) -> None:
    before = await registry.count_modules()
    response = await registry.publish_zip(data)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith(f"/{slug}")
    assert await registry.count_modules() == before


async def test_invalid_manifest_lists_every_issue_by_file_and_pointer(registry: Registry) -> None:
    response = await registry.publish_zip(
        make_zip({"modyard.yaml": "name: Bad Name\nversion: '1.2'\nkind: connector\n"})
    )
    errors = response.json()["errors"]
    assert {(error["file"], error["pointer"]) for error in errors} == {
        ("modyard.yaml", "/name"),
        ("modyard.yaml", "/version"),
    }


async def test_uploads_need_a_publisher_and_a_supported_media_type(registry: Registry) -> None:
    assert (await registry.publish_zip(native("9.9.9"), headers=registry.user)).status_code == 403
    assert (await registry.client.post("/v1/modules", content=b"x")).status_code == 401
    wrong = await registry.client.post(
        "/v1/modules", content=b"x", headers={**registry.operator, "content-type": "text/plain"}
    )
    assert wrong.status_code == 422
    assert wrong.json()["type"].endswith("/unsupported-media-type")


async def test_manifest_json_schema_is_published(registry: Registry) -> None:
    schema = (await registry.client.get("/v1/schemas/manifest", headers=registry.user)).json()
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"name", "version", "format", "kind", "components"} <= set(schema["properties"])


async def test_unknown_module_and_version_are_404_problems(registry: Registry) -> None:
    assert (
        await registry.client.get("/v1/modules/nobody", headers=registry.user)
    ).status_code == 404
    await registry.publish_zip(native("1.0.0", name="known"))
    missing = await registry.client.get("/v1/modules/known/versions/3.0.0", headers=registry.user)
    assert missing.status_code == 404
    assert "GET /v1/modules/known" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("fixture", "format", "kind"),
    [
        ("native-weather", "native", "connector"),
        ("appmixer-acme", "appmixer", "connector"),
        ("slingr-sample-complex", "slingr", "package"),
        ("prismeai-nlu", "prismeai", "app"),
        ("prismeai-toolbox", "prismeai", "app"),
        ("appcell-newresellerclub", "appcell", "cell"),
    ],
)
async def test_every_format_publishes_through_the_api(
    registry: Registry, fixture: str, format: str, kind: str
) -> None:
    response = await registry.publish_zip(zip_fixture(fixture))
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["manifest"]["format"], body["manifest"]["kind"]) == (format, kind)
    stored = await registry.client.get(
        f"/v1/modules/{body['name']}/versions/{body['version']}", headers=registry.user
    )
    assert stored.json()["manifest"] == body["manifest"]


async def test_a_pinned_cell_schema_is_served_from_the_archive(registry: Registry) -> None:
    response = await registry.publish_zip(zip_fixture("appcell-newresellerclub"))
    manifest = response.json()["manifest"]
    pinned = next(
        action["payload"]["pinned"]
        for action in manifest["cell"]["actions"]
        if action.get("payload") and action["payload"].get("pinned")
    )
    served = await registry.client.get(
        f"/v1/modules/{manifest['name']}/versions/{manifest['version']}/files/{pinned['path']}",
        headers=registry.user,
    )
    assert served.status_code == 200
    assert pinned["digest"] == "sha256:" + hashlib.sha256(served.content).hexdigest()


async def test_unresolvable_schema_reference_is_a_422_naming_file_and_reference(
    registry: Registry,
) -> None:
    files = dict(example_files("appcell-newresellerclub"))
    schema = next(
        path for path in files if path.lower().startswith("schema/") and "register" in path
    )
    del files[schema]
    before = await registry.count_modules()
    response = await registry.publish_zip(make_zip(files))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"].endswith("/unresolvable-schema")
    assert any(schema.rsplit("/", 1)[-1] in error["detail"] for error in body["errors"])
    assert all(error["file"] for error in body["errors"])
    assert await registry.count_modules() == before


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("pages/index.html", "text/html"),
        ("assets/logo.svg", "image/svg+xml"),
        ("lib/run.js", "text/javascript"),
        ("schemas/feed.xml", "application/xml"),
        ("docs/guide.pdf", "application/pdf"),
        ("bin/tool", "application/octet-stream"),
    ],
)
async def test_active_module_files_are_served_as_attachments_with_nosniff(
    registry: Registry, path: str, media_type: str
) -> None:
    hostile = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(document.cookie)'/>"
    name = "active-" + path.split("/")[0]
    data = native("1.0.0", name=name)
    with_files = make_zip({**_named(data), path: hostile})
    published = await registry.publish_zip(with_files)
    assert published.status_code in (200, 201), published.text
    version = published.json()["version"]
    served = await registry.client.get(
        f"/v1/modules/{name}/versions/{version}/files/{path}", headers=registry.user
    )
    assert served.status_code == 200
    assert served.content == hostile
    assert served.headers["content-type"].split(";")[0] == media_type
    assert served.headers["x-content-type-options"] == "nosniff"
    filename = path.rsplit("/", 1)[-1]
    assert served.headers["content-disposition"] == (
        f"attachment; filename=\"{filename}\"; filename*=UTF-8''{filename}"
    )
    assert "sandbox" in served.headers["content-security-policy"]


async def test_passive_module_files_are_served_inline_with_nosniff(registry: Registry) -> None:
    data = make_zip({**_named(native("1.0.0", name="passive-files")), "notes.txt": "<b>x</b>"})
    assert (await registry.publish_zip(data)).status_code in (200, 201)
    served = await registry.client.get(
        "/v1/modules/passive-files/versions/1.0.0/files/notes.txt", headers=registry.user
    )
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in served.headers


def _named(archive: bytes) -> dict[str, bytes]:
    """The files of a zip built by :func:`native` (to add files to it)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}
