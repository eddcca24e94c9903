"""Helpers of the JavaScript runner's end-to-end tests on the real stack: look-alike Appmixer
bundles (``jsrunner_env.bundle_zip``) published to the real registry, installed by the real
installer, run by the runtime through the broker and the runner.

Each test names its stack with a short tag; the services' schemas are derived from it
(``reg_<tag>``, ``inst_<tag>``, ``runtime_<tag>``, ``js_runner_<tag>``) so that tests sharing a
session's database never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from jsrunner_env import SHARED_CACHE
from sqlalchemy import select

from modyard.jsrunner.app import create_app as create_runner
from modyard.jsrunner.settings import JsRunnerSettings
from modyard.runtime.app import create_app as create_runtime
from modyard.runtime.models import NodeLog
from modyard.runtime.settings import RuntimeSettings
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import service_process


@dataclass(frozen=True)
class Stack:
    """The registry and the installer as real processes, and how to build the runtime and the
    runner in process against them (tests reach into those apps' state)."""

    infra: IsolatedInfra
    tag: str
    registry_url: str
    installer_url: str

    def runtime(self, **overrides: Any) -> FastAPI:
        return create_runtime(
            RuntimeSettings(
                database_url=self.infra.database_url,
                amqp_url=self.infra.amqp_url,
                installer_url=self.installer_url,
                db_schema=f"runtime_{self.tag}",
                **overrides,
            )
        )

    def runner(self, **overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "database_url": self.infra.database_url,
            "amqp_url": self.infra.amqp_url,
            "registry_url": self.registry_url,
            "installer_url": self.installer_url,
            "db_schema": f"js_runner_{self.tag}",
            "cache_dir": str(SHARED_CACHE),
            **overrides,
        }
        return create_runner(JsRunnerSettings(**values))


@asynccontextmanager
async def registry_and_installer(infra: IsolatedInfra, tag: str) -> AsyncIterator[Stack]:
    async with service_process(
        "registry", {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": f"reg_{tag}"}
    ) as registry:
        installer_env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": f"inst_{tag}",
            "MODYARD_REGISTRY_URL": registry.url,
        }
        async with service_process("installer", installer_env) as installer:
            yield Stack(infra, tag, registry.url, installer.url)


async def publish(client: httpx.AsyncClient, registry_url: str, bundle: bytes) -> None:
    published = await client.post(
        f"{registry_url}/v1/modules", content=bundle, headers={"content-type": "application/zip"}
    )
    assert published.status_code == 201, published.text


async def create_workspace(client: httpx.AsyncClient, installer_url: str, slug: str) -> None:
    created = await client.post(f"{installer_url}/v1/workspaces", json={"slug": slug, "name": slug})
    assert created.status_code == 201, created.text


async def install(
    client: httpx.AsyncClient,
    installer_url: str,
    workspace: str,
    module: str,
    slug: str,
    *,
    config: Mapping[str, Any] | None = None,
    grant_users: bool = True,
) -> None:
    """Installs ``module`` as ``slug``; with ``grant_users``, lets the workspace's users use it
    (flows refuse a component nobody was granted)."""
    body: dict[str, Any] = {"module": module, "slug": slug}
    if config is not None:
        body["config"] = dict(config)
    installed = await client.post(
        f"{installer_url}/v1/workspaces/{workspace}/installations", json=body
    )
    assert installed.status_code == 201, installed.text
    if grant_users:
        granted = await client.post(
            f"{installer_url}/v1/workspaces/{workspace}/installations/{slug}/acl/grant-users"
        )
        assert granted.status_code == 201, granted.text


async def component_refs(
    client: httpx.AsyncClient, installer_url: str, workspace: str
) -> dict[str, str]:
    """The workspace's components: full name → the ref a flow's node names it by."""
    listed = (await client.get(f"{installer_url}/v1/workspaces/{workspace}/components")).json()
    return {item["name"]: item["ref"] for item in listed}


async def node_logs(runtime_app: Any, flow_id: str) -> list[Any]:
    """What the flow's ``core.log`` nodes recorded, oldest first."""
    async with runtime_app.state.database.transaction() as session:
        rows = await session.scalars(
            select(NodeLog.entry).where(NodeLog.flow_id == uuid.UUID(flow_id)).order_by(NodeLog.id)
        )
        return list(rows)
