"""``modyard deploy …`` as an operator types it, against the deployer process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from modyard.testing.services import free_port

from .conftest import Deployer, Images

pytestmark = pytest.mark.infra


async def modyard(deployer: Deployer, *args: str, expect: int = 0) -> tuple[Any, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modyard.sdk.cli",
        "deploy",
        *args,
        env={
            **os.environ,
            "MODYARD_DEPLOYER_URL": deployer.url,
            "MODYARD_DEPLOY_TOKEN": "modyard",
            "COLUMNS": "250",
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == expect, stderr.decode() + stdout.decode()
    text = stdout.decode().strip()
    return (json.loads(text) if text.startswith(("{", "[")) else text), stderr.decode()


async def test_the_deploy_commands_from_create_to_delete(
    deployer: Deployer, images: Images
) -> None:
    port = free_port()
    created, _ = await modyard(
        deployer,
        "create",
        "cli-module",
        "--image",
        images.ref("v1"),
        "--token-id",
        images.login.username,
        "--env",
        "GREETING=from-cli",
        "--port",
        str(port),
        "--deploy",
        "--json",
    )
    assert created["status"] == "running"
    assert created["endpoint"] == f"http://127.0.0.1:{port}"

    table, _ = await modyard(deployer, "list")
    assert "cli-module" in table
    assert "running" in table
    listed, _ = await modyard(deployer, "list", "--json")
    assert [item["name"] for item in listed if item["name"] == "cli-module"] == ["cli-module"]

    updated, _ = await modyard(deployer, "update", "cli-module", "--tag", "v2", "--json")
    assert (updated["status"], updated["tag"], updated["serving_generation"]) == (
        "running",
        "v2",
        2,
    )
    logs, _ = await modyard(deployer, "logs", "cli-module", "--tail", "5")
    assert "serving from-cli v2" in logs

    suspended, _ = await modyard(deployer, "suspend", "cli-module", "--json")
    assert suspended["status"] == "suspended"
    resumed, _ = await modyard(deployer, "resume", "cli-module", "--json")
    assert resumed["status"] == "running"

    failed, _ = await modyard(deployer, "update", "cli-module", "--tag", "nope", expect=1)
    assert "does not exist in the registry" in failed

    deleted, _ = await modyard(deployer, "delete", "cli-module")
    assert "deleted" in deleted
    assert await deployer.containers("cli-module") == []

    _, errors = await modyard(
        deployer,
        "create",
        "cli-bad",
        "--image",
        "no-host/module:1",
        "--token-id",
        "x",
        expect=1,
    )
    assert "/body/image" in errors
