"""A secret's default never comes back out of the registry (issue 19: Slingr 3, Prisme.ai 4,
container 3): not in the manifest, not in ``GET …/archive``, not in ``GET …/files/{path}``.

Modules valid on their home platform publish unedited, so the registry does not refuse a secret
default: it stores the upload without it (the publish result lists what it left out). Each case
is a look-alike of the format's example with a secret default marked by a unique value; the real
registry (PostgreSQL, RabbitMQ, in process) must not hand that value back through any read, while
keeping the non-secret defaults and the secret fields themselves.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from modyard.common.auth import Role
from modyard.modules.examples import example_files
from modyard.registry.app import create_app
from modyard.registry.settings import RegistrySettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process

pytestmark = pytest.mark.infra


class Registry:
    def __init__(self, client: httpx.AsyncClient, settings: RegistrySettings) -> None:
        self.client = client
        self.operator = auth_headers(settings, Role.operator)
        self.user = auth_headers(settings, Role.user)

    async def publish_zip(self, archive: bytes, version: str | None) -> httpx.Response:
        return await self.client.post(
            "/v1/modules",
            params={"version": version} if version else None,
            files={"archive": ("module.zip", archive, "application/zip")},
            headers=self.operator,
        )

    async def publish_json(self, document: dict[str, Any]) -> httpx.Response:
        return await self.client.post("/v1/modules", json=document, headers=self.operator)

    async def everything_readable(self, name: str, version: str) -> list[tuple[str, bytes]]:
        """What anyone who can read the module gets back: its version document, its archive
        (every entry, decompressed) and every file through the files endpoint."""
        base = f"/v1/modules/{name}/versions/{version}"
        document = await self.client.get(base, headers=self.user)
        assert document.status_code == 200, document.text
        archive = await self.client.get(base + "/archive", headers=self.user)
        assert archive.status_code == 200, archive.text
        read: list[tuple[str, bytes]] = [("version", document.content)]
        if archive.headers["content-type"].startswith("application/zip"):
            with zipfile.ZipFile(io.BytesIO(archive.content)) as stored:
                names = [entry for entry in stored.namelist() if not entry.endswith("/")]
                read += [(f"archive:{entry}", stored.read(entry)) for entry in names]
            for entry in names:
                served = await self.client.get(f"{base}/files/{entry}", headers=self.user)
                assert served.status_code == 200, (entry, served.text)
                read.append((f"files:{entry}", served.content))
        else:
            read.append(("archive", archive.content))
        return read


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[Registry]:
    settings = RegistrySettings(database_url=infra.database_url, amqp_url=infra.amqp_url)
    async with in_process(create_app(settings)) as client:
        yield Registry(client, settings)


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2).encode()


def _edit_json(files: dict[str, bytes], path: str, edit: Callable[[Any], None]) -> None:
    document = json.loads(files[path])
    edit(document)
    files[path] = _json(document)


def _edit_yaml(files: dict[str, bytes], path: str, edit: Callable[[Any], None]) -> None:
    document = yaml.safe_load(files[path])
    edit(document)
    files[path] = yaml.safe_dump(document, sort_keys=False).encode()


@dataclass
class Case:
    name: str
    version: str
    files: dict[str, bytes]
    #: Passed with the publish when the files carry no version (or None).
    requested: str | None
    #: Unique values of secrets' defaults in the upload: none may be readable afterwards.
    secrets: list[str]
    #: (file, pointer) the publish result must list.
    removed: set[tuple[str, str]]
    #: Non-secret defaults, and the secret fields, that must still be in the manifest.
    check: Callable[[dict[str, Any]], None]


def slingr_case() -> Case:
    files = dict(example_files("slingr-sample-complex"))

    def package(document: dict[str, Any]) -> None:
        document["name"] = "sample-secrets"
        for field in document["configuration"]:
            if field["name"] == "password":
                field["defaultValue"] = "slingr-config-pw-7f3a"

    def step(document: dict[str, Any]) -> None:
        document["inputs"].append(
            {
                "label": "Service key",
                "name": "serviceKey",
                "type": "password",
                "defaultValue": "slingr-step-pw-91cc",
            }
        )

    _edit_json(files, "package.json", package)
    _edit_json(files, "flowSteps/calculator/step.json", step)
    pointer = next(
        index
        for index, field in enumerate(json.loads(files["package.json"])["configuration"])
        if field["name"] == "password"
    )
    inputs = len(json.loads(files["flowSteps/calculator/step.json"])["inputs"]) - 1

    def check(manifest: dict[str, Any]) -> None:
        (password,) = [f for f in manifest["config"]["fields"] if f["name"] == "password"]
        assert (password["secret"], password["default"]) == (True, None)
        (calculator,) = [c for c in manifest["components"] if c["name"] == "calculator"]
        properties = calculator["in_ports"][0]["schema"]["properties"]
        assert "serviceKey" in properties
        assert properties["operation"]["default"] == "SUM"  # not a secret: kept

    return Case(
        "sample-secrets",
        "1.4.2",
        files,
        None,
        ["slingr-config-pw-7f3a", "slingr-step-pw-91cc"],
        {
            ("package.json", f"/configuration/{pointer}/defaultValue"),
            ("flowSteps/calculator/step.json", f"/inputs/{inputs}/defaultValue"),
        },
        check,
    )


def prismeai_case() -> Case:
    files = dict(example_files("prismeai-toolbox"))

    def workspace(document: dict[str, Any]) -> None:
        document["slug"] = "toolbox-secrets"
        document["config"]["schema"]["apiKey"] = {"type": "string", "ui:widget": "password"}
        document["config"]["schema"]["signingKey"] = {
            "type": "string",
            "secret": True,
            "default": "prisme-schema-default-4b2e",
        }
        document["config"]["value"]["apiKey"] = "prisme-config-value-0d9a"
        document["repositories"] = {
            "origin": {
                "name": "origin",
                "type": "git",
                "config": {
                    "url": "https://git.example/toolbox.git",
                    "auth": {"user": "bot", "password": "prisme-repo-password-55e1"},
                },
            }
        }

    _edit_yaml(files, "toolbox.yml", workspace)

    def check(manifest: dict[str, Any]) -> None:
        fields = {f["name"]: f for f in manifest["config"]["fields"]}
        assert (fields["apiKey"]["secret"], fields["apiKey"]["default"]) == (True, None)
        assert fields["API_URL"]["default"] == "https://api.mycompany.com"  # not a secret

    return Case(
        "toolbox-secrets",
        "5.0.0",
        files,
        None,
        ["prisme-schema-default-4b2e", "prisme-config-value-0d9a", "prisme-repo-password-55e1"],
        {
            ("toolbox.yml", "/config/schema/signingKey/default"),
            ("toolbox.yml", "/config/value/apiKey"),
            ("toolbox.yml", "/repositories"),
        },
        check,
    )


def native_case() -> Case:
    files = dict(example_files("native-weather"))

    def manifest(document: dict[str, Any]) -> None:
        document["name"] = "acme-weather-secrets"
        document["config"]["schema"]["properties"]["apiKey"]["default"] = "native-schema-3c1d"
        for field in document["config"]["fields"]:
            if field["name"] == "apiKey":
                field["default"] = "native-field-a8f0"

    _edit_yaml(files, "modyard.yaml", manifest)

    def check(manifest: dict[str, Any]) -> None:
        fields = {f["name"]: f for f in manifest["config"]["fields"]}
        assert (fields["apiKey"]["secret"], fields["apiKey"]["default"]) == (True, None)
        assert fields["units"]["default"] == "metric"
        assert manifest["config"]["schema"]["properties"]["units"]["default"] == "metric"

    return Case(
        "acme-weather-secrets",
        "1.4.0",
        files,
        None,
        ["native-schema-3c1d", "native-field-a8f0"],
        {
            ("modyard.yaml", "/config/schema/properties/apiKey/default"),
            ("modyard.yaml", "/config/fields/0/default"),
        },
        check,
    )


def appcell_case() -> Case:
    files = dict(example_files("appcell-renamed-registrar"))
    _edit_json(files, "AppCell.json", lambda document: document.update(version="1.0.7"))
    files["settings.json"] = _json(
        {"settings": {"api_password": "appcell-setting-6e2b", "endpoint": "https://reg.example"}}
    )

    def check(manifest: dict[str, Any]) -> None:
        fields = {f["name"]: f for f in manifest["config"]["fields"]}
        assert (fields["api_password"]["secret"], fields["api_password"]["default"]) == (
            True,
            None,
        )
        assert fields["endpoint"]["default"] == "https://reg.example"
        assert manifest["cell"]["settings"]["settings"]["endpoint"] == "https://reg.example"

    return Case(
        "acmeregistrarcell",
        "1.0.7",
        files,
        None,
        ["appcell-setting-6e2b"],
        {("settings.json", "/settings/api_password")},
        check,
    )


def container_zip_case() -> Case:
    files = dict(example_files("container-oneentry-digest"))
    _edit_json(files, "container.json", lambda d: d.update(name="acme-catalog-zipped"))

    def check(manifest: dict[str, Any]) -> None:
        env = {v["name"]: v for v in manifest["container"]["env"]}
        assert env["GITLAB_TOKEN"]["secret"] is True
        assert env["API_URL"]["default"] == "https://api.acme.example"

    return Case(
        "acme-catalog-zipped",
        "1.2.0",
        files,
        None,
        ["glpat-look-alike-not-a-real-token"],
        {("container.json", "/env/GITLAB_TOKEN")},
        check,
    )


ZIP_CASES = [slingr_case, prismeai_case, native_case, appcell_case, container_zip_case]


def _assert_nowhere(read: list[tuple[str, bytes]], secrets: list[str]) -> None:
    leaks = [(where, s) for where, content in read for s in secrets if s.encode() in content]
    assert leaks == []


@pytest.mark.parametrize("make", ZIP_CASES, ids=lambda make: make.__name__)
async def test_a_secret_default_in_an_archive_is_readable_nowhere_after_publishing(
    registry: Registry, make: Callable[[], Case]
) -> None:
    case = make()
    uploaded = make_zip(case.files)
    assert all(s.encode() in b"".join(case.files.values()) for s in case.secrets)

    response = await registry.publish_zip(uploaded, case.requested)

    assert response.status_code == 201, response.text
    result = response.json()
    _assert_nowhere(await registry.everything_readable(case.name, case.version), case.secrets)
    case.check(result["manifest"])
    assert {(r["file"], r["pointer"]) for r in result["secret_defaults_removed"]} == case.removed
    # The stored copy is the module the manifest describes, and it is not the upload.
    stored = await registry.client.get(
        f"/v1/modules/{case.name}/versions/{case.version}", headers=registry.user
    )
    assert stored.json()["manifest"] == result["manifest"]
    assert result["digest"] != "sha256:" + hashlib.sha256(uploaded).hexdigest()
    # Publishing the same upload again is the idempotent retry it always was.
    again = await registry.publish_zip(uploaded, case.requested)
    assert (again.status_code, again.json()["digest"]) == (200, result["digest"]), again.text


async def test_a_container_json_body_is_stored_without_its_secrets_defaults(
    registry: Registry,
) -> None:
    document = json.loads(example_files("container-oneentry-digest")["container.json"])
    document["name"] = "acme-catalog-body"
    document["env"] = [
        {"name": "API_URL", "default": "https://api.acme.example"},
        {"name": "API_TOKEN", "default": "body-token-by-name-2a7c"},
        {"name": "UPSTREAM", "secret": True, "default": "body-secret-flag-e413"},
        {"name": "PUBLIC_KEY_ID", "secret": False, "default": "kept-not-secret"},
    ]

    response = await registry.publish_json(document)

    assert response.status_code == 201, response.text
    result = response.json()
    read = await registry.everything_readable("acme-catalog-body", "1.2.0")
    _assert_nowhere(read, ["body-token-by-name-2a7c", "body-secret-flag-e413"])
    assert {(r["file"], r["pointer"]) for r in result["secret_defaults_removed"]} == {
        ("(body)", "/env/1/default"),
        ("(body)", "/env/2/default"),
    }
    env = {v["name"]: v for v in result["manifest"]["container"]["env"]}
    assert (env["API_TOKEN"]["secret"], env["UPSTREAM"]["secret"]) == (True, True)
    assert env["PUBLIC_KEY_ID"]["default"] == "kept-not-secret"
    (_, body) = read[-1]
    stored = json.loads(body)
    assert stored["env"][0] == {"name": "API_URL", "default": "https://api.acme.example"}
    assert stored["env"][1] == {"name": "API_TOKEN"}
    assert stored["env"][3]["default"] == "kept-not-secret"


async def test_a_module_without_secret_defaults_is_stored_byte_for_byte(
    registry: Registry,
) -> None:
    files = dict(example_files("native-weather"))
    _edit_yaml(files, "modyard.yaml", lambda d: d.update(name="acme-weather-plain"))
    uploaded = make_zip(files)

    response = await registry.client.post(
        "/v1/modules",
        files={"archive": ("module.zip", uploaded, "application/zip")},
        headers=registry.operator,
    )

    assert response.status_code == 201, response.text
    assert response.json()["secret_defaults_removed"] == []
    archive = await registry.client.get(
        "/v1/modules/acme-weather-plain/versions/1.4.0/archive", headers=registry.user
    )
    assert archive.content == uploaded
