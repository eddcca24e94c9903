"""The registry under load: publishes per second, then search and manifest fetch at 10,000 stored
versions, and the time to publish a 5 MiB archive. Targets: search and manifest p99 < 25 ms,
5 MiB publish < 300 ms."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import statistics
import time
import zipfile
from typing import Any

import asyncpg
import httpx

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra, asyncpg_dsn
from modyard.testing.services import auth_headers, service_process

MODULES = 200
COMPONENTS = 50
TARGET_VERSIONS = 10_000
SAMPLES = 500
WORDS = ("weather", "billing", "crm", "mail", "storage", "queue", "search", "maps", "chat", "files")


def module_zip(name: str, version: str, word: str, *, payload: bytes = b"") -> bytes:
    components = [
        {
            "name": f"Action{index}",
            "role": "action",
            "label": f"{word} action {index}",
            "description": f"Does {word} thing number {index}.",
            "in_ports": [
                {
                    "name": "in",
                    "schema": {"type": "object", "properties": {"x": {"type": "string"}}},
                }
            ],
            "out_ports": [{"name": "out"}],
            "executor": {"type": "js", "entrypoint": "index.js"},
        }
        for index in range(COMPONENTS)
    ]
    manifest = {
        "name": name,
        "version": version,
        "kind": "connector",
        "label": f"{word.title()} connector {name}",
        "description": f"A {word} connector used by the benchmark.",
        "components": components,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("modyard.json", json.dumps(manifest))
        archive.writestr("index.js", "module.exports = async () => {};")
        if payload:
            archive.writestr("assets/blob.bin", payload, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[max(0, int(len(ordered) * fraction) - 1)] * 1000, 2)


async def _timed(client: httpx.AsyncClient, url: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    response = await client.get(url, **kwargs)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


async def _fill_versions(infra: IsolatedInfra) -> int:
    """Copies of the published versions under new version numbers, up to TARGET_VERSIONS in all."""
    connection = await asyncpg.connect(asyncpg_dsn(infra.database_url))
    try:
        await connection.execute(
            """
            INSERT INTO registry.module_versions
                (id, module_id, version, major, minor, patch, prerelease, manifest, archive_digest,
                 size, published_by, published_at, yanked)
            SELECT gen_random_uuid(), v.module_id, '1.0.' || n, 1, 0, n, false,
                   jsonb_set(v.manifest, '{version}', to_jsonb('1.0.' || n)), v.archive_digest,
                   v.size, 'bench', now(), false
            FROM registry.module_versions v, generate_series(1, $1) AS n
            """,
            TARGET_VERSIONS // MODULES - 1,
        )
        await connection.execute("ANALYZE registry.module_versions")
        return int(await connection.fetchval("SELECT count(*) FROM registry.module_versions"))
    finally:
        await connection.close()


async def registry_load(infra: IsolatedInfra) -> dict[str, Any]:
    headers = auth_headers(CommonSettings(), Role.operator)
    rng = random.Random(7)  # noqa: S311 - reproducible load, not secrets
    async with (
        service_process("registry", infra.env()) as registry,
        httpx.AsyncClient(base_url=registry.url, headers=headers, timeout=30) as client,
    ):
        archives = [
            module_zip(f"bench-{i:03d}", "1.0.0", WORDS[i % len(WORDS)]) for i in range(MODULES)
        ]
        started = time.perf_counter()
        for offset in range(0, MODULES, 4):
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/modules", content=data, headers={"content-type": "application/zip"}
                    )
                    for data in archives[offset : offset + 4]
                )
            )
            for response in responses:
                response.raise_for_status()
        publishes_per_second = MODULES / (time.perf_counter() - started)

        stored = await _fill_versions(infra)

        search = [
            await _timed(client, "/v1/modules", params={"q": rng.choice(WORDS), "limit": 50})
            for _ in range(SAMPLES)
        ]
        fetch = [
            await _timed(
                client,
                f"/v1/modules/bench-{rng.randrange(MODULES):03d}/versions/1.0.{rng.randrange(1, 50)}",
            )
            for _ in range(SAMPLES)
        ]

        big = module_zip("bench-big", "1.0.0", "files", payload=os.urandom(5 * 1024 * 1024))
        big_times = []
        for attempt in range(5):
            data = (
                big
                if attempt == 0
                else module_zip(
                    "bench-big", f"1.0.{attempt}", "files", payload=os.urandom(5 * 1024 * 1024)
                )
            )
            started = time.perf_counter()
            response = await client.post(
                "/v1/modules", content=data, headers={"content-type": "application/zip"}
            )
            big_times.append(time.perf_counter() - started)
            response.raise_for_status()

    return {
        "benchmark": "registry",
        "modules": MODULES,
        "components_per_module": COMPONENTS,
        "publishes_per_second": round(publishes_per_second, 1),
        "stored_versions": stored,
        "search_p50_ms": percentile(search, 0.5),
        "search_p99_ms": percentile(search, 0.99),
        "manifest_fetch_p50_ms": percentile(fetch, 0.5),
        "manifest_fetch_p99_ms": percentile(fetch, 0.99),
        "publish_5mib_median_ms": round(statistics.median(big_times) * 1000, 1),
        "publish_5mib_max_ms": round(max(big_times) * 1000, 1),
        "targets_met": percentile(search, 0.99) < 25
        and percentile(fetch, 0.99) < 25
        and statistics.median(big_times) < 0.3,
    }
