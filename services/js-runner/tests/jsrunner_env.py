"""Helpers of the JavaScript runner's tests: the runner against real Node.js sandboxes, bundles
as the registry takes them, and loopback servers standing in for vendors' APIs (the flow tests'
real registry, installer, runtime and broker are in ``stack_env``).

Module versions used by the runner-level tests are look-alike Appmixer components written here
(never copied from a connector), registered from a directory with ``ModuleStore.add_directory``.
The base layer and the npm cache live in a cache shared by test sessions (keyed by lockfile
hash, installed atomically), so only the first session installs them.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from modyard.jsrunner.http_bridge import HttpBridge
from modyard.jsrunner.isolation import probe
from modyard.jsrunner.modules import ModuleStore
from modyard.jsrunner.pool import ChildPool
from modyard.jsrunner.registry_client import RegistryClient
from modyard.jsrunner.runner import JsRunner
from modyard.jsrunner.settings import JsRunnerSettings

SHARED_CACHE = Path("/tmp/modyard-js-runner-test-cache")  # noqa: S108 - shared on purpose


def runner_settings(**overrides: Any) -> JsRunnerSettings:
    values: dict[str, Any] = {
        "cache_dir": str(SHARED_CACHE),
        "call_timeout_seconds": 4,
        "heap_mb": 64,
        "rss_limit_mb": 192,
        "rss_check_seconds": 0.1,
        # Loopback servers are the tests' stand-ins for vendors' APIs.
        "egress_allow_loopback": True,
        **overrides,
    }
    return JsRunnerSettings(**values)


def bundle_zip(documents: Mapping[str, Any], sources: Mapping[str, str]) -> bytes:
    """A bundle as the registry takes it: ``documents`` written as JSON (bundle.json,
    component.json, package.json), ``sources`` (the components' JavaScript) as they are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, document in documents.items():
            archive.writestr(path, json.dumps(document))
        for path, source in sources.items():
            archive.writestr(path, source)
    return buffer.getvalue()


@asynccontextmanager
async def loopback_server(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a free loopback port (tests reach only 127.0.0.1); yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class Harness:
    runner: JsRunner
    settings: JsRunnerSettings
    root: Path

    def module(
        self,
        components: Mapping[str, str],
        *,
        name: str | None = None,
        auth_service: str | None = None,
        files: Mapping[str, str] | None = None,
    ) -> str:
        """A look-alike Appmixer module (``vendor.service.module``) with one ``<C>.js`` per
        component, registered with the runner; returns its name."""
        name = name or f"acme.t{uuid.uuid4().hex[:8]}.core"
        directory = self.root / name
        manifest: dict[str, Any] = {"name": name, "components": []}
        for component, source in components.items():
            folder = directory / component
            folder.mkdir(parents=True)
            (folder / f"{component}.js").write_text(source)
            entry: dict[str, Any] = {
                "name": f"{name}.{component}",
                "executor": {"type": "js", "entrypoint": f"{component}/{component}.js"},
            }
            if auth_service:
                entry["auth"] = {"service": auth_service}
            manifest["components"].append(entry)
        for path, text in (files or {}).items():
            (directory / path).parent.mkdir(parents=True, exist_ok=True)
            (directory / path).write_text(text)
        self.runner.store.add_directory(name, "1.0.0", directory, manifest)
        return name

    async def call(
        self, module: str, component: str, payload: Any = None, **extra: Any
    ) -> dict[str, Any]:
        return await self.runner.handle(
            {
                "module": module,
                "version": "1.0.0",
                "component": f"{module}.{component}",
                "port": "in",
                "payload": payload,
                **extra,
            }
        )


@asynccontextmanager
async def running_harness(settings: JsRunnerSettings, root: Path) -> AsyncIterator[Harness]:
    """A runner as the service builds it (every isolation layer, the module store's base, the
    HTTP bridge and the child pool), closed when the block ends; modules live under ``root``."""
    isolation = await probe(settings)
    assert isolation.complete, isolation.missing  # this machine has every layer
    registry = RegistryClient(settings)
    store = ModuleStore(settings, registry)
    await store.prepare_base()
    bridge = HttpBridge(settings)
    pool = ChildPool(settings, isolation, bridge.perform_for)
    pool.proxy_clients = bridge.clients
    try:
        yield Harness(JsRunner(settings, isolation, store, pool), settings, root)
    finally:
        await pool.close()
        await bridge.aclose()
        await registry.close()
