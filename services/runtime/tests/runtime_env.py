"""Pieces the runtime's end-to-end tests share: the module archives they publish, the registry
and installer they install them through, and the node logs they read back."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from sqlalchemy import select

from modyard.runtime.models import NodeLog
from modyard.testing.infra import IsolatedInfra
from modyard.testing.services import ServiceProcess, service_process


def module_archive(document: dict[str, Any]) -> bytes:
    """A module as the registry takes it: a zip whose ``modyard.yaml`` is ``document``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.yaml", yaml.safe_dump(document))
    return buffer.getvalue()


@asynccontextmanager
async def registry_and_installer(
    infra: IsolatedInfra, name: str, installer_env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[ServiceProcess, ServiceProcess]]:
    """A real registry and an installer pointed at it, in schemas ``registry_for_<name>`` and
    ``installer_for_<name>``: each test module gets its own so their publications never meet.
    ``installer_env`` adds variables to the installer's environment (e.g. app config overrides)."""
    registry_env = {**infra.env(), "MODYARD_REGISTRY_DB_SCHEMA": f"registry_for_{name}"}
    async with service_process("registry", registry_env) as registry:
        env = {
            **infra.env(),
            "MODYARD_INSTALLER_DB_SCHEMA": f"installer_for_{name}",
            "MODYARD_REGISTRY_URL": registry.url,
            **(installer_env or {}),
        }
        async with service_process("installer", env) as installer:
            yield registry, installer


async def node_log_entries(app: FastAPI, flow_id: str) -> list[Any]:
    """The log entries a flow's nodes wrote, oldest first (read from the runtime's own database,
    which is what an operator's log view shows)."""
    async with app.state.database.transaction() as session:
        rows = await session.scalars(
            select(NodeLog.entry).where(NodeLog.flow_id == uuid.UUID(flow_id)).order_by(NodeLog.id)
        )
        return list(rows)


async def external_request(
    default_headers: Mapping[str, str], method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """A request to another service's process (the registry's, the installer's) on a client of
    its own; headers given with the request win over ``default_headers``."""
    async with httpx.AsyncClient(headers=dict(default_headers), timeout=30) as client:
        return await client.request(method, url, **kwargs)


async def running_flow(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    workspace: str,
    definition: Mapping[str, Any],
    *,
    name: str = "flow",
) -> str:
    """A flow of ``definition`` created in ``workspace`` through the runtime's API and started;
    its id. (Fails the test with the runtime's answer if either step is refused.)"""
    created = await client.post(
        f"/v1/workspaces/{workspace}/flows",
        json={"name": f"{name}-{uuid.uuid4().hex[:6]}", "definition": dict(definition)},
        headers=dict(headers),
    )
    assert created.status_code == 201, created.text
    flow_id = str(created.json()["id"])
    started = await client.post(
        f"/v1/workspaces/{workspace}/flows/{flow_id}/start", headers=dict(headers)
    )
    assert started.status_code == 200, started.text
    return flow_id
