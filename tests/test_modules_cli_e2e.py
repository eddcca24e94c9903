"""``modyard pack``, ``publish`` and ``modules …`` against a real registry process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from modyard.modules.examples import example_dir
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import ServiceProcess, run_modyard, service_process

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[ServiceProcess]:
    # A schema of its own: other tests of this session publish the same example modules.
    env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_cli_e2e"}
    async with service_process("registry", env) as process:
        yield process


async def modyard(registry: ServiceProcess, *args: str, expect: int = 0) -> tuple[Any, str]:
    return await run_modyard({"MODYARD_REGISTRY_URL": registry.url}, *args, expect=expect)


async def test_pack_publish_search_show_download_and_yank(
    registry: ServiceProcess, tmp_path: Path
) -> None:
    packed, _ = await modyard(
        registry,
        "pack",
        str(example_dir("slingr-sample-complex")),
        "-o",
        str(tmp_path / "p.zip"),
        "--json",
    )
    assert packed["format"] == "slingr"
    assert (tmp_path / "p.zip").stat().st_size == packed["bytes"]

    published, _ = await modyard(registry, "publish", str(tmp_path / "p.zip"), "--json")
    assert published["created"] is True
    again, _ = await modyard(registry, "publish", str(tmp_path / "p.zip"), "--json")
    assert again["created"] is False
    assert again["digest"] == published["digest"]
    name, version = published["name"], published["version"]

    found, _ = await modyard(registry, "modules", "search", "--format", "slingr", "--json")
    assert [item["name"] for item in found] == [name]

    shown, _ = await modyard(registry, "modules", "show", name, "--json")
    assert [v["version"] for v in shown["versions"]] == [version]

    target = tmp_path / "download.zip"
    await modyard(registry, "modules", "download", name, version, "-o", str(target))
    assert target.read_bytes() == (tmp_path / "p.zip").read_bytes()

    yanked, _ = await modyard(
        registry, "modules", "yank", name, version, "--reason", "test", "--json"
    )
    assert yanked["yanked"] is True


async def test_publish_of_an_invalid_folder_fails_before_uploading(
    registry: ServiceProcess, tmp_path: Path
) -> None:
    (tmp_path / "modyard.yaml").write_text("name: Bad Name\nversion: '1'\nkind: connector\n")
    _, stderr = await modyard(registry, "publish", str(tmp_path), expect=1)
    assert "modyard.yaml/name" in stderr
    assert "modyard.yaml/version" in stderr
    listed, _ = await modyard(registry, "modules", "search", "--json")
    assert all(item["name"] != "bad-name" for item in listed)


async def test_registry_problems_are_shown_with_their_detail(registry: ServiceProcess) -> None:
    _, stderr = await modyard(registry, "modules", "show", "no-such-module", expect=1)
    assert "404" in stderr
    assert "no-such-module" in stderr
