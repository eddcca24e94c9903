"""Services as real processes on one infrastructure, each told where the others listen: what the
end-to-end tests, the fault tests and the benchmarks run against.

Every service's port is chosen before any process starts, so each one's environment names the
others' URLs (never the default ports, where a developer's ``make up`` may listen). With a
``schema_suffix`` every service keeps its tables in schemas of its own, so that the clusters of one
test session never meet in the session's database. A service can be killed (SIGKILL, no shutdown
of any kind) and started again on its port with the same settings.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from modyard.common.auth import Role
from modyard.common.settings import CommonSettings
from modyard.testing.services import (
    PROCESS_PACKAGES,
    SERVICE_PACKAGES,
    ServiceProcess,
    auth_headers,
    free_port,
    service_process,
    url_variable,
    wait_processes_ready,
)


class Cluster:
    """Services as processes on fixed loopback ports (all five unless ``services`` says fewer;
    the JavaScript runner, ``js-runner``, when ``services`` names it)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        services: Iterable[str] = tuple(SERVICE_PACKAGES),
        schema_suffix: str | None = None,
        overrides: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.services = tuple(services)
        # Every service gets a port, started or not: one left out is refused, never confused
        # with a process on its default port.
        self.ports = {service: free_port() for service in PROCESS_PACKAGES}
        urls = {url_variable(service): self.url(service) for service in self.ports}
        schemas = (
            {
                f"MODYARD_{package.upper()}_DB_SCHEMA": f"{package}_{schema_suffix}"
                for package in SERVICE_PACKAGES.values()
            }
            | {"MODYARD_JS_RUNNER_DB_SCHEMA": f"js_runner_{schema_suffix}"}
            if schema_suffix
            else {}
        )
        overrides = overrides or {}
        self.env = {
            service: {**env, **urls, **schemas, **overrides.get(service, {})}
            for service in self.services
        }
        self.processes: dict[str, ServiceProcess] = {}
        self._stacks: dict[str, AsyncExitStack] = {}
        self.operator = auth_headers(CommonSettings(), Role.operator)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    async def start(self, service: str, *, ready: bool = True) -> ServiceProcess:
        stack = AsyncExitStack()
        handle = await stack.enter_async_context(
            service_process(service, self.env[service], ready=ready, port=self.ports[service])
        )
        self._stacks[service], self.processes[service] = stack, handle
        return handle

    async def start_all(self, *, timeout: float = 90) -> None:
        for service in self.services:
            await self.start(service, ready=False)
        await wait_processes_ready(self.processes.values(), timeout=timeout)

    async def kill(self, service: str) -> None:
        """``kill -9``: connections dropped by the kernel, nothing flushed or closed."""
        process = self.processes[service].process
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        await self._stacks.pop(service).aclose()

    async def restart(self, service: str) -> ServiceProcess:
        """The service again, on the same port and with the same settings, once ready."""
        return await self.start(service)

    async def close(self) -> None:
        for service in list(self._stacks):
            await self._stacks.pop(service).aclose()

    async def api(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call to a service as an operator."""
        async with httpx.AsyncClient(headers=self.operator, timeout=30) as client:
            return await client.request(method, self.url(service) + path, **kwargs)


@asynccontextmanager
async def running_cluster(
    env: Mapping[str, str],
    *,
    services: Iterable[str] = tuple(SERVICE_PACKAGES),
    schema_suffix: str | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
) -> AsyncIterator[Cluster]:
    """A :class:`Cluster` with every service started and ready; stopped on the way out."""
    cluster = Cluster(env, services=services, schema_suffix=schema_suffix, overrides=overrides)
    try:
        await cluster.start_all()
        yield cluster
    finally:
        await cluster.close()
