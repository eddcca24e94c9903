"""The accounts tests' stack: the real registry as a process, the JavaScript runner and the
installer in process (the installer reaches the runner through an ASGI transport), and a
look-alike Appmixer connector whose auth.js asks a loopback vendor."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI

from modyard.common.auth import Role
from modyard.installer.accounts.jsrunner_client import JsRunnerClient
from modyard.installer.app import create_app
from modyard.installer.context import SLOT
from modyard.installer.settings import InstallerSettings
from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.testing.accounts import API_KEY_AUTH_JS
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import auth_headers, in_process, service_process

#: The runner's base layer and npm cache, shared with the runner's own tests.
SHARED_CACHE = Path("/tmp/modyard-js-runner-test-cache")  # noqa: S108 - shared on purpose

ECHO_JS = """module.exports = {
    async receive(context) {
        const response = await context.httpRequest({
            url: context.auth.baseUrl + '/me',
            headers: { Authorization: 'Bearer ' + context.auth.apiKey },
        });
        await context.sendJson({ seenAs: response.data.user.email }, 'out');
    }
};
"""


def connector_zip(name: str, auth_js: str = API_KEY_AUTH_JS, component_js: str = ECHO_JS) -> bytes:
    """A ``vendor.service`` bundle: an auth.js for ``vendor:service`` and one component
    using it."""
    vendor, service = name.split(".")
    documents = {
        "bundle.json": {"name": name, "version": "1.0.0"},
        "core/Whoami/component.json": {
            "name": f"{name}.core.Whoami",
            "auth": {"service": f"{vendor}:{service}"},
            "inPorts": ["in"],
            "outPorts": ["out"],
        },
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, document in documents.items():
            archive.writestr(path, json.dumps(document))
        archive.writestr("auth.js", auth_js)
        archive.writestr("core/Whoami/Whoami.js", component_js)
    return buffer.getvalue()


@dataclass
class Vendor:
    """A vendor's API on loopback: ``/me`` answers for the keys in ``keys``."""

    url: str = ""
    keys: dict[str, str] = field(default_factory=dict)

    def app(self) -> web.Application:
        async def me(request: web.Request) -> web.Response:
            key = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if key not in self.keys:
                return web.json_response(
                    {"message": "Invalid API key: check Settings > API"}, status=401
                )
            return web.json_response({"user": {"email": self.keys[key]}})

        app = web.Application()
        app.router.add_get("/me", me)
        return app


@asynccontextmanager
async def loopback(app: web.Application) -> AsyncIterator[str]:
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
class Stack:
    registry_url: str
    client: httpx.AsyncClient
    app: FastAPI
    runner_app: FastAPI
    settings: InstallerSettings

    def headers(self, subject: str, *workspaces: str, role: Role = Role.user) -> dict[str, str]:
        return auth_headers(self.settings, role, subject=subject, workspaces=workspaces)

    @property
    def operator(self) -> dict[str, str]:
        return auth_headers(self.settings, Role.operator, subject="ops@modyard.test")

    async def publish(self, data: bytes) -> None:
        async with httpx.AsyncClient(base_url=self.registry_url, headers=self.operator) as client:
            response = await client.post(
                "/v1/modules", content=data, headers={"content-type": "application/zip"}
            )
            assert response.status_code in (200, 201), response.text

    async def workspace(self, slug: str, members: list[str]) -> None:
        response = await self.client.post(
            "/v1/workspaces",
            json={"slug": slug, "name": slug, "members": members},
            headers=self.operator,
        )
        assert response.status_code == 201, response.text

    async def install(self, ws: str, module: str) -> None:
        response = await self.client.post(
            f"/v1/workspaces/{ws}/installations", json={"module": module}, headers=self.operator
        )
        assert response.status_code == 201, response.text


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def accounts_stack(infra: IsolatedInfra, tag: str, **installer: Any) -> AsyncIterator[Stack]:
    env: Mapping[str, str] = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": f"reg_{tag}"}
    async with service_process("registry", env) as registry:
        runner_app = create_runner(
            JsRunnerSettings(
                database_url=infra.database_url,
                amqp_url=infra.amqp_url,
                registry_url=registry.url,
                db_schema=f"js_runner_{tag}",
                cache_dir=str(SHARED_CACHE),
                egress_allow_loopback=True,
            )
        )
        settings = InstallerSettings(
            database_url=infra.database_url,
            amqp_url=infra.amqp_url,
            registry_url=registry.url,
            db_schema=f"inst_{tag}",
            **installer,
        )
        app = create_app(settings)
        async with in_process(runner_app), in_process(app) as client:
            SLOT.of(app).jsrunner = JsRunnerClient(
                settings, transport=httpx.ASGITransport(app=runner_app)
            )
            yield Stack(registry.url, client, app, runner_app, settings)
