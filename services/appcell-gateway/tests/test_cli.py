"""``modyard cells …`` against the gateway over a real socket, and ``modyard cell run`` as a real
process that finishes its request in flight when told to stop."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from gateway_env import WS, Env
from typer.testing import CliRunner

from examples.resellerclub_cell.process import CWD, cell_command
from modyard.sdk.cli import app as cli
from modyard.testing.services import served

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
async def gateway_url(env: Env) -> AsyncIterator[str]:
    """The in-process gateway also on a loopback socket, for the CLI."""
    async with served(env.app, lifespan="off") as port:
        yield f"http://127.0.0.1:{port}"


async def _cli(gateway_url: str, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, cli, list(args), env={"MODYARD_GATEWAY_URL": gateway_url, "COLUMNS": "250"}
    )
    return result.exit_code, result.output


async def test_cells_list_show_credentials_call_and_requests(
    env: Env, gateway_url: str, tmp_path: Path
) -> None:
    code, output = await _cli(gateway_url, "cells", "list", "--json")
    assert code == 0, output
    assert any(cell["slug"] == "rc" for cell in json.loads(output))
    code, output = await _cli(gateway_url, "cells", "show", f"{WS}:rc")
    assert code == 0, output
    assert "checkAvailability" in output
    assert "rbac::domains.transfer" in output
    code, output = await _cli(gateway_url, "cells", "credentials", f"{WS}:rc", "--json")
    assert code == 0, output
    assert json.loads(output)["queue"].startswith("appcell.cell.")
    payload = tmp_path / "create.json"
    payload.write_text(json.dumps({"domain": "from-the-cli.com", "years": 1}))
    call = ("cells", "call", f"{WS}:rc", "NewResellerClub", "create", "--payload", str(payload))
    code, output = await _cli(gateway_url, *call, "--idempotency-key", "cli-1")
    assert code == 0, output
    assert json.loads(output)["result"]["domain"] == "from-the-cli.com"
    # Repeated with its key, the call is answered again rather than refused as taken.
    code, again = await _cli(gateway_url, *call, "--idempotency-key", "cli-1")
    assert code == 0, again
    assert json.loads(again) == json.loads(output)
    payload.write_text(json.dumps({"domain": "NOPE"}))
    code, output = await _cli(
        gateway_url,
        "cells",
        "call",
        f"{WS}:rc",
        "NewResellerClub",
        "create",
        "--payload",
        str(payload),
    )
    assert code == 1
    assert "/body/payload/domain" in output
    code, output = await _cli(gateway_url, "cells", "requests", "--cell", f"{WS}:rc", "--json")
    assert code == 0, output
    assert json.loads(output)


async def test_cell_run_serves_until_sigterm_and_finishes_what_it_started(
    env: Env, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(await env.credentials(f"{WS}:rc")))
    await env.stop_cell(f"{WS}:rc")  # the process below is the only consumer
    process = await asyncio.create_subprocess_exec(
        *cell_command(credentials, log_level="INFO"),
        cwd=CWD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        started = await asyncio.wait_for(process.stdout.readline(), 30)
        assert b"worker_started" in started
        created = await env.call("create", {"domain": "cell-process.com", "years": 1})
        assert created.status_code == 200, created.text
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        lines = (await process.stdout.read()).decode().splitlines()
        events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
        assert "request_handled" in events
        assert events[-1] == "worker_stopped"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        from examples.resellerclub_cell.cell import cell

        await env.run_cell(f"{WS}:rc", cell)


async def test_cell_run_with_refused_credentials_says_why(env: Env, tmp_path: Path) -> None:
    given = await env.credentials(f"{WS}:rc")
    url = urlsplit(given["amqp_url"])
    netloc = f"{url.username}:wrong-password@{url.hostname}:{url.port}"
    wrong = {**given, "amqp_url": urlunsplit(url._replace(netloc=netloc))}
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps(wrong))
    process = await asyncio.create_subprocess_exec(
        *cell_command(credentials),
        cwd=CWD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    said = " ".join(stderr.decode().split())
    assert "cannot start newResellerClubCell" in said
    assert "ACCESS_REFUSED" in said
    assert "Traceback" not in said
