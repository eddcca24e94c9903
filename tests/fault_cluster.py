"""The five services as real processes that a test may kill (SIGKILL) and start again on the same
port (``modyard.testing.cluster``), and cells run by ``modyard cell run`` as processes of
their own: what the fault tests of test_process_kills.py and test_cell_faults.py inject their
faults into.

Every service gets database schemas of its own (a suffix per cluster), so that what earlier test
modules left in the session's database (a published module, a workspace) is not in the way.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from modyard.sdk.cell.runner import run_command
from modyard.testing.cells import InstalledCell, install_cell
from modyard.testing.cluster import Cluster, running_cluster
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # the example cell lives in examples/

from examples.resellerclub_cell.module_archive import module_zip  # noqa: E402

CELL_CONFIG = {"userid": "reseller", "password": "secret", "TestMode": "1"}


@asynccontextmanager
async def fault_cluster(
    infra: IsolatedInfra, overrides: Mapping[str, Mapping[str, str]] | None = None
) -> AsyncIterator[Cluster]:
    """The five services, in schemas of their own, ready for faults."""
    suffix = f"faults_{uuid.uuid4().hex[:6]}"
    async with running_cluster(infra.env(), schema_suffix=suffix, overrides=overrides) as cluster:
        yield cluster


async def install_example_cell(cluster: Cluster, workspace: str, slug: str) -> InstalledCell:
    """Publish the example cell's module, install it, and wait until the gateway serves it."""
    async with httpx.AsyncClient(headers=cluster.operator, timeout=30) as client:
        return await install_cell(
            client,
            registry=cluster.url("registry"),
            installer=cluster.url("installer"),
            gateway=cluster.url("appcell-gateway"),
            archive=module_zip(),
            workspace=workspace,
            slug=slug,
            config=CELL_CONFIG,
        )


async def remove_cell(cluster: Cluster, workspace: str, slug: str) -> None:
    """Uninstall: the gateway deletes the cell's broker user (users are not per vhost)."""
    removed = await cluster.api(
        "DELETE", "installer", f"/v1/workspaces/{workspace}/installations/{slug}"
    )
    assert removed.status_code in (200, 202, 204), removed.text

    async def gone() -> bool:
        response = await cluster.api("GET", "appcell-gateway", f"/v1/cells/{workspace}:{slug}")
        return response.status_code == 404

    await eventually(gone, timeout=30)


class CellProcess:
    """``modyard cell run fault_cells:<attribute>`` as a process of its own (SIGKILL-able)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.output: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.output.append(raw.decode(errors="replace"))
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        await self._reader


@asynccontextmanager
async def cell_process(
    credentials_file: Path, attribute: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[CellProcess]:
    """A cell of tests/fault_cells.py consuming the queue in ``credentials_file``; yields once
    it consumes."""
    process = await asyncio.create_subprocess_exec(
        *run_command(f"fault_cells:{attribute}", credentials_file),
        cwd=TESTS,
        env={**os.environ, "MODYARD_LOG_LEVEL": "INFO", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    cell = CellProcess(process)
    try:
        await eventually(
            lambda: bool(cell.events("worker_started")) or process.returncode is not None,
            timeout=60,
        )
        assert cell.events("worker_started"), "".join(cell.output)
        yield cell
    finally:
        await cell.kill()
