"""End-to-end installs per second: a registry and an installer process, each install resolving a
dependency chain 6 deep over HTTP and creating the 6 installations in one transaction."""

from __future__ import annotations

import asyncio
import statistics
import time
import zipfile
from typing import Any

import httpx
import yaml

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.archives import make_zip
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, service_process

DEPTH = 6
CHAINS = 5
INSTALLS = 60
CONCURRENCY = 4


def _module(name: str, dependency: str | None) -> bytes:
    document: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "kind": "connector",
        "dependencies": [{"name": dependency, "range": "^1.0.0"}] if dependency else [],
        "components": [{"name": "Act", "role": "action", "executor": {"type": "http"}}],
    }
    return make_zip({"modyard.yaml": yaml.safe_dump(document)}, compression=zipfile.ZIP_STORED)


async def installs_per_second(infra: IsolatedInfra) -> dict[str, Any]:
    headers = auth_headers(CommonSettings(), Role.operator)
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": "registry_bench_installer"}
    async with service_process("registry", registry_env) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": "installer_bench",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with (
            service_process("installer", installer_env) as installer,
            httpx.AsyncClient(headers=headers, timeout=60) as client,
        ):
            for chain in range(CHAINS):
                for layer in reversed(range(DEPTH)):
                    dependency = f"c{chain}-l{layer + 1}" if layer + 1 < DEPTH else None
                    response = await client.post(
                        f"{registry.url}/v1/modules",
                        content=_module(f"c{chain}-l{layer}", dependency),
                        headers={"content-type": "application/zip"},
                    )
                    response.raise_for_status()
            for index in range(INSTALLS):
                response = await client.post(
                    f"{installer.url}/v1/workspaces",
                    json={"slug": f"bench-{index}", "name": "bench"},
                )
                response.raise_for_status()

            durations: list[float] = []

            async def install(index: int) -> None:
                started = time.perf_counter()
                response = await client.post(
                    f"{installer.url}/v1/workspaces/bench-{index}/installations",
                    json={"module": f"c{index % CHAINS}-l0", "version": "^1"},
                )
                durations.append(time.perf_counter() - started)
                response.raise_for_status()
                assert len(response.json()["also_installed"]) == DEPTH - 1

            started = time.perf_counter()
            for offset in range(0, INSTALLS, CONCURRENCY):
                await asyncio.gather(
                    *(install(i) for i in range(offset, min(offset + CONCURRENCY, INSTALLS)))
                )
            elapsed = time.perf_counter() - started
    durations.sort()
    return {
        "benchmark": "installer_installs",
        "installs": INSTALLS,
        "installations_per_install": DEPTH,
        "concurrency": CONCURRENCY,
        "installs_per_second": round(INSTALLS / elapsed, 1),
        "install_p50_ms": round(statistics.median(durations) * 1000, 1),
        "install_p99_ms": round(durations[max(0, int(len(durations) * 0.99) - 1)] * 1000, 1),
    }
