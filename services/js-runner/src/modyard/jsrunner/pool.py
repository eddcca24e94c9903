"""The long-lived children, one per module version, and when they are replaced.

A child is replaced after ``max_calls_per_child`` calls (it finishes what it has, new calls go
to its successor), after ``idle_seconds`` without a call, and after a crash or a kill (the next
call starts a new one). Children of different module versions share nothing but the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from modyard.common.egress.aiohttp_client import EgressClients
from modyard.jsrunner.isolation import Isolation
from modyard.jsrunner.sandbox import Child, HttpHandler, RpcHandler, SandboxSpec
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)


class ChildPool:
    def __init__(
        self,
        settings: JsRunnerSettings,
        isolation: Isolation,
        http: HttpHandler,
        rpc: RpcHandler | None = None,
    ) -> None:
        self._settings = settings
        self._isolation = isolation
        self._http = http
        #: The persistent context members (context_api.ContextApi.answer), when there is a
        #: database; without one those members reject.
        self.rpc = rpc
        #: The egress clients of the npm SDKs' proxy (egress_proxy.py); None: no proxy.
        self.proxy_clients: EgressClients | None = None
        self._children: dict[str, Child] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self._retired: set[Child] = set()
        self.started = 0
        #: Start-up time of every child started, seconds (the benchmark reads it).
        self.start_times: list[float] = []

    def children(self) -> list[Child]:
        return list(self._children.values())

    async def child(self, spec: SandboxSpec) -> Child:
        """The running child of ``spec``'s module version, started if there is none."""
        current = self._children.get(spec.key)
        if current is not None:
            self._maybe_retire(current)
            if current.alive and not current.retiring:
                return current
        lock = self._starting.setdefault(spec.key, asyncio.Lock())
        async with lock:
            current = self._children.get(spec.key)
            if current is not None and current.alive and not current.retiring:
                return current
            child = Child(
                spec,
                self._settings,
                self._isolation,
                self._http,
                self.rpc,
                proxy_clients=self.proxy_clients,
            )
            await child.start()
            self.started += 1
            if len(self.start_times) < 10_000:
                self.start_times.append(child.started_seconds)
            self._children[spec.key] = child
            return child

    def _maybe_retire(self, child: Child) -> None:
        if not child.retiring and child.calls_started >= self._settings.max_calls_per_child:
            child.retiring = True
            self._retired.add(child)

    def reap(self) -> None:
        """Stop idle children and retired ones with nothing left in flight."""
        now = time.monotonic()
        for key, child in list(self._children.items()):
            if not child.alive or child.retiring:
                del self._children[key]
            elif child.in_flight == 0 and now - child.last_used > self._settings.idle_seconds:
                del self._children[key]
                child.kill(f"recycled after {self._settings.idle_seconds} s idle")
        for child in list(self._retired):
            if not child.alive:
                self._retired.discard(child)
            elif child.in_flight == 0:
                self._retired.discard(child)
                child.kill(f"recycled after {child.calls_started} calls")

    async def reap_forever(self) -> None:
        interval = min(5.0, self._settings.idle_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            self.reap()

    async def close(self) -> None:
        children = [*self._children.values(), *self._retired]
        self._children.clear()
        self._retired.clear()
        for child in children:
            child.kill("recycled: the runner is stopping")
        for child in children:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await child.wait_closed()
