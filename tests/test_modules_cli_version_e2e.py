"""``modyard pack --version`` and ``modyard publish --version`` against a real registry process:
a Slingr package, a Prisme.ai app and an AppCell cell whose files carry no version (issue 19)."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from modyard.modules.examples import example_dir
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import ServiceProcess, run_modyard, service_process

pytestmark = pytest.mark.infra

FIXTURES = Path(__file__).parents[1] / "libs" / "modules" / "tests" / "fixtures"


@pytest.fixture(scope="module")
async def registry(infra: IsolatedInfra) -> AsyncIterator[ServiceProcess]:
    env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_cli_version_e2e"}
    async with service_process("registry", env) as process:
        yield process


async def modyard(registry: ServiceProcess, *args: str, expect: int = 0) -> tuple[Any, str]:
    return await run_modyard({"MODYARD_REGISTRY_URL": registry.url}, *args, expect=expect)


def versionless_cell(tmp_path: Path) -> Path:
    folder = tmp_path / "cell"
    shutil.copytree(example_dir("appcell-newresellerclub"), folder)
    document = json.loads((folder / "AppCell.json").read_text())
    del document["version"]
    (folder / "AppCell.json").write_text(json.dumps(document))
    return folder


@pytest.mark.parametrize(
    ("source", "name", "module_format", "descriptor"),
    [
        ("slingr/chatter", "chatter", "slingr", "package.json"),
        ("prismeai/helpdesk", "helpdesk", "prismeai", "index.yml"),
        ("appcell", "newresellerclubcell", "appcell", "AppCell.json"),
    ],
)
async def test_pack_and_publish_with_version(
    registry: ServiceProcess,
    tmp_path: Path,
    source: str,
    name: str,
    module_format: str,
    descriptor: str,
) -> None:
    folder = versionless_cell(tmp_path) if source == "appcell" else FIXTURES / source

    _, stderr = await modyard(registry, "pack", str(folder), expect=1)
    assert f"{descriptor}/version" in stderr
    assert "modyard publish --version" in stderr
    packed, _ = await modyard(
        registry,
        "pack",
        str(folder),
        "--version",
        "v1.0.0",
        "-o",
        str(tmp_path / "m.zip"),
        "--json",
    )
    assert (packed["name"], packed["version"], packed["format"]) == (name, "1.0.0", module_format)

    _, stderr = await modyard(registry, "publish", str(tmp_path / "m.zip"), expect=1)
    assert "--version" in stderr
    published, _ = await modyard(
        registry, "publish", str(tmp_path / "m.zip"), "--version", "v1.0.0", "--json"
    )
    assert (published["name"], published["version"], published["created"]) == (name, "1.0.0", True)
    from_folder, _ = await modyard(registry, "publish", str(folder), "--version", "1.0.1", "--json")
    assert from_folder["version"] == "1.0.1"

    shown, _ = await modyard(registry, "modules", "show", name, "--json")
    assert sorted(v["version"] for v in shown["versions"]) == ["1.0.0", "1.0.1"]


async def test_a_version_that_disagrees_with_the_files_is_refused_before_uploading(
    registry: ServiceProcess,
) -> None:
    folder = example_dir("native-weather")
    _, stderr = await modyard(registry, "publish", str(folder), "--version", "v9.0.0", expect=1)

    assert "modyard.yaml/version" in stderr
    assert "but the publish request says 9.0.0" in stderr
    _, stderr = await modyard(registry, "publish", str(folder), "--version", "nine", expect=1)
    assert "--version 'nine'" in stderr
    listed, _ = await modyard(registry, "modules", "search", "--json")
    assert all(item["name"] != "acme-weather" for item in listed)
