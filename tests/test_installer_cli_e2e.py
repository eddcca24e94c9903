"""``modyard install``, ``installations …`` and ``acl …`` against real registry and installer processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.modules.examples import example_dir
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, service_process
from modyard.testing.services import run_modyard as modyard

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def services(infra: IsolatedInfra) -> AsyncIterator[dict[str, str]]:
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_cli_installer"}
    async with service_process("registry", registry_env) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "installer_cli",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            yield {"MODYARD_REGISTRY_URL": registry.url, "MODYARD_INSTALLER_URL": installer.url}


async def test_install_configure_upgrade_and_remove_from_the_command_line(
    services: dict[str, str], tmp_path: Path
) -> None:
    for name, version in (("acme-http", "2.1.0"), ("geo", "1.0.0")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "modyard.yaml").write_text(f"name: {name}\nversion: {version}\nkind: package\n")
        await modyard(services, "publish", str(folder), "--json")
    await modyard(services, "publish", str(example_dir("native-weather")), "--json")
    async with httpx.AsyncClient(
        base_url=services["MODYARD_INSTALLER_URL"],
        headers=auth_headers(CommonSettings(), Role.operator),
    ) as api:
        assert (
            await api.post("/v1/workspaces", json={"slug": "cli", "name": "CLI"})
        ).status_code == 201

    config = tmp_path / "weather.yaml"
    config.write_text("apiKey: cli-secret-123\nunits: imperial\n")
    installed, _ = await modyard(
        services,
        "install",
        "acme-weather@^1.0",
        "-w",
        "cli",
        "--slug",
        "weather",
        "--config",
        str(config),
        "--pin",
        "--json",
    )
    assert (installed["version"], installed["pinned"]) == ("1.4.0", True)
    assert installed["config"] == {"apiKey": "********", "units": "imperial"}

    listed, _ = await modyard(services, "installations", "list", "-w", "cli", "--json")
    assert [item["slug"] for item in listed] == ["acme-http", "geo", "weather"]
    shown, _ = await modyard(services, "installations", "show", "weather", "-w", "cli")
    assert "cli-secret-123" not in json.dumps(shown)

    patch = tmp_path / "patch.json"
    patch.write_text('{"units": "metric"}')
    configured, _ = await modyard(
        services,
        "installations",
        "configure",
        "weather",
        "-w",
        "cli",
        "--config",
        str(patch),
        "--json",
    )
    assert configured["config"]["units"] == "metric"

    _, stderr = await modyard(
        services, "installations", "upgrade", "weather", "-w", "cli", "--version", "^9", expect=1
    )
    assert "409" in stderr

    rule, _ = await modyard(
        services,
        "acl",
        "add",
        "acme-weather.*",
        "--domain",
        "example.com",
        "--action",
        "use",
        "--json",
    )
    rules, _ = await modyard(services, "acl", "list", "--json")
    assert [r["id"] for r in rules] == [rule["id"]]
    await modyard(services, "acl", "remove", rule["id"])
    assert (await modyard(services, "acl", "list", "--json"))[0] == []

    _, blocked = await modyard(services, "installations", "remove", "geo", "-w", "cli", expect=1)
    assert "weather" in blocked
    await modyard(services, "installations", "remove", "weather", "-w", "cli")
    remaining, _ = await modyard(services, "installations", "list", "-w", "cli", "--json")
    assert [item["slug"] for item in remaining] == ["acme-http", "geo"]


async def test_secret_key_command_prints_a_usable_fernet_key(services: dict[str, str]) -> None:
    key, _ = await modyard(services, "secret-key")
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"
