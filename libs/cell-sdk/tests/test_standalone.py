"""A cell author installs the cell SDK alone (issue 18): its wheel, built here and installed into
a fresh virtual environment with nothing else of modyard, imports without FastAPI, SQLAlchemy,
asyncpg or alembic, and runs a cell (``python -m modyard.cell``) that answers a request sent
the gateway's way through the test broker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import pytest

from modyard.testing.infra import IsolatedInfra

pytestmark = pytest.mark.infra

PACKAGE = Path(__file__).resolve().parents[1]
#: What a cell must not drag in (the services' stack), and the rest of modyard.
ABSENT = (
    "fastapi",
    "sqlalchemy",
    "asyncpg",
    "alembic",
    "aio_pika",
    "modyard.common",
    "modyard.sdk",
)

CELL = """
from modyard.cell import Cell, Conflict

cell = Cell("standalone")


@cell.action("Greeting", "create")
async def create(payload, settings):
    if payload["name"] == "taken":
        raise Conflict("taken is taken")
    return {"hello": payload["name"], "by": settings["who"]}
"""


def uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    assert found, "uv is needed to build and install the cell SDK (make env installs it)"
    return found


def run(*command: str, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def cell_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the cell SDK's wheel and what PyPI gives for its dependencies."""
    where = tmp_path_factory.mktemp("cell-sdk")
    run(uv(), "build", "--wheel", "--out-dir", str(where / "dist"), str(PACKAGE), cwd=where)
    (wheel,) = (where / "dist").glob("modyard_cell_sdk-*.whl")
    run(uv(), "venv", "--python", sys.executable, str(where / "venv"), cwd=where)
    python = where / "venv" / "bin" / "python"
    run(uv(), "pip", "install", "--python", str(python), str(wheel), cwd=where)
    return python


def test_the_cell_sdk_installs_alone_without_the_services_stack(cell_venv: Path) -> None:
    probe = (
        "import importlib.util, json, modyard.cell\n"
        f"print(json.dumps([m for m in {list(ABSENT)!r} if importlib.util.find_spec(m)]))"
    )
    found = json.loads(run(str(cell_venv), "-c", probe, cwd=cell_venv.parent))
    assert found == []


async def test_a_cell_run_from_that_venv_answers_through_the_broker(
    cell_venv: Path, infra: IsolatedInfra, tmp_path: Path
) -> None:
    (tmp_path / "standalone_cell.py").write_text(CELL)
    queue = f"test.cell.{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(infra.amqp_url)
    process: asyncio.subprocess.Process | None = None
    try:
        channel = await connection.channel()
        # Declared as the gateway declares an installed cell's queue.
        await channel.declare_queue(queue, durable=False, auto_delete=False)
        replies = await channel.declare_queue(exclusive=True)
        process = await asyncio.create_subprocess_exec(
            str(cell_venv),
            *("-m", "modyard.cell", "standalone_cell:cell", "--amqp-url", infra.amqp_url),
            *("--queue", queue),
            cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        answers: dict[str, dict[str, object]] = {}
        for name in ("world", "taken"):
            correlation_id = uuid.uuid4().hex
            await channel.default_exchange.publish(
                aio_pika.Message(
                    json.dumps(
                        {
                            "action": "create",
                            "resource": "Greeting",
                            "payload": {"name": name},
                            "settings": {"who": "standalone"},
                        }
                    ).encode(),
                    correlation_id=correlation_id,
                    message_id=uuid.uuid4().hex,
                    reply_to=replies.name,
                ),
                routing_key=queue,
            )
            async with replies.iterator(timeout=60) as incoming:
                async for message in incoming:
                    assert message.correlation_id == correlation_id
                    answers[name] = json.loads(message.body)
                    await message.ack()
                    break
        assert answers["world"] == {"result": {"hello": "world", "by": "standalone"}}
        error = answers["taken"]["error"]
        assert isinstance(error, dict)
        assert error["status"] == 409
        # SIGTERM: it finishes what it has and exits cleanly.
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, output.decode()
        assert b"worker_stopped" in output
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await connection.close()
