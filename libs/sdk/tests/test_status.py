"""`modyard status` lists the backoffice too, at MODYARD_BACKOFFICE_URL (default :8006).

The CLI runs as the user runs it (a process), against a real backoffice process; the five other
services point at closed loopback ports, so they are down and the status fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from modyard.common.settings import CommonSettings
from modyard.sdk.client import SERVICES, ModyardClient
from modyard.sdk.status import STATUS_SERVICES, healthy, service_checks
from modyard.testing.services import free_port, service_process, url_variable


def test_backoffice_url_defaults_to_8006_and_follows_its_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env / .run/infra.env here
    monkeypatch.delenv("MODYARD_BACKOFFICE_URL", raising=False)
    assert CommonSettings().service_urls()["backoffice"] == "http://127.0.0.1:8006"
    monkeypatch.setenv("MODYARD_BACKOFFICE_URL", "http://console.internal:9006")
    urls = CommonSettings().service_urls()
    assert urls["backoffice"] == "http://console.internal:9006"
    assert list(urls) == [*SERVICES, "backoffice", "js-runner"]
    assert list(STATUS_SERVICES) == [*SERVICES, "backoffice"]


async def test_service_checks_report_a_backoffice_that_does_not_answer_as_down() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with ModyardClient(dict.fromkeys(STATUS_SERVICES, closed)) as client:
        checks = await service_checks(client)
    assert [check.name for check in checks] == list(STATUS_SERVICES)
    (backoffice,) = [check for check in checks if check.name == "backoffice"]
    assert (backoffice.state, backoffice.url, backoffice.required) == ("down", closed, True)
    assert backoffice.detail.startswith("no answer")
    assert not healthy(checks)


async def test_modyard_status_lists_the_backoffice_at_its_url(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    others = {url_variable(service): closed for service in SERVICES}
    async with service_process("backoffice", others) as backoffice:
        backoffice_url = backoffice.url
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MODYARD_")},
            **others,
            "MODYARD_BACKOFFICE_URL": backoffice_url,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "modyard.sdk.cli",
            "status",
            "--services-only",
            "--json",
            env=env,
            cwd=tmp_path,  # no .env / .run/infra.env: the environment alone decides
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1, stderr.decode()  # the five others are down
    report = json.loads(stdout)
    assert report["healthy"] is False
    by_name = {check["name"]: check for check in report["checks"]}
    assert list(by_name) == [*SERVICES, "backoffice"]
    assert by_name["backoffice"] == {
        "kind": "service",
        "name": "backoffice",
        "url": backoffice_url,
        "state": "up",
        "detail": "ready",
        "required": True,
    }
    for service in SERVICES:
        assert (by_name[service]["state"], by_name[service]["url"]) == ("down", closed)
