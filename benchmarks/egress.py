"""Egress policy overhead: what the check adds to each outbound request.

(a) the policy alone: ``check_url`` of a URL plus ``check_address`` of what its name resolved
to, per request, in µs (pure Python, no I/O);
(b) end to end: sequential GETs to a server on 127.0.0.1 through an ``EgressClient`` (loopback
allowed, as in development) and through a plain aiohttp session, the difference per request in
µs. (b) is noisy on a busy machine; (a) is the policy's own cost.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from modyard.common.egress.aiohttp_client import EgressClient
from modyard.common.egress.policy import EgressPolicy
from modyard.common.settings import CommonSettings
from modyard.testing.infra import IsolatedInfra

CHECKS = 20_000
REQUESTS = 2_000
ROUNDS = 5


def _policy_us(policy: EgressPolicy) -> float:
    urls = [f"https://api{i % 50}.example.com:443/v1/items?page={i}" for i in range(CHECKS)]
    started = time.perf_counter()
    for url in urls:
        checked = policy.check_url(url)
        policy.check_address(checked.host or "", "93.184.216.34", 443)
    return (time.perf_counter() - started) / CHECKS * 1e6


async def _requests_us(session_get: Any, url: str) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS):
        await session_get(url)
    return (time.perf_counter() - started) / REQUESTS * 1e6


async def egress_overhead(_infra: IsolatedInfra) -> dict[str, Any]:
    settings = CommonSettings().model_copy(update={"egress_allow_loopback": True})
    policy = EgressPolicy.from_settings(settings)
    check_us = min(_policy_us(policy) for _ in range(ROUNDS))

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    async with TestServer(app, host="127.0.0.1") as server:
        url = f"http://127.0.0.1:{server.port}/"
        egress = EgressClient(policy)
        plain = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)

        async def through_policy(target: str) -> None:
            async with egress.request("GET", target) as response:
                await response.read()

        async def direct(target: str) -> None:
            async with plain.get(target, allow_redirects=False) as response:
                await response.read()

        try:
            await through_policy(url)
            await direct(url)
            with_policy, without = [], []
            for _ in range(ROUNDS):
                with_policy.append(await _requests_us(through_policy, url))
                without.append(await _requests_us(direct, url))
        finally:
            await egress.close()
            await plain.close()
    return {
        "benchmark": "egress_overhead",
        "policy_check_us": round(check_us, 2),
        "request_us_with_policy": round(statistics.median(with_policy), 1),
        "request_us_without_policy": round(statistics.median(without), 1),
        "overhead_us_per_request": round(
            statistics.median(with_policy) - statistics.median(without), 1
        ),
        "checks": CHECKS,
        "requests": REQUESTS * ROUNDS,
    }
