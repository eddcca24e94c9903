"""Start-up time and memory of one service process, idle and after a burst of requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from benchmarks.process_stats import rss_mib
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import service_process


async def idle_service(infra: IsolatedInfra, requests: int = 2000) -> dict[str, Any]:
    started = time.perf_counter()
    async with service_process("registry", infra.env()) as registry:
        ready_after = time.perf_counter() - started
        idle_rss = rss_mib(registry.process.pid)
        async with httpx.AsyncClient(base_url=registry.url) as client:
            burst_started = time.perf_counter()
            for offset in range(0, requests, 50):
                await asyncio.gather(
                    *(client.get("/healthz") for _ in range(min(50, requests - offset)))
                )
            burst = time.perf_counter() - burst_started
        return {
            "benchmark": "service_process_footprint",
            "service": "registry",
            "ready_seconds": round(ready_after, 2),
            "idle_rss_mib": idle_rss,
            "healthz_requests": requests,
            "healthz_requests_per_second": round(requests / burst),
            "rss_after_burst_mib": rss_mib(registry.process.pid),
        }
