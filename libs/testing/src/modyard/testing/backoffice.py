"""The backoffice with the services it calls, as real processes on the given infrastructure:
what the browser tests and ``make screenshots`` run against.

Each upstream gets a database schema and the deployer a namespace of its own, so this cluster
never meets another one started in the same database, vhost or Docker daemon.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings
from modyard.testing.cluster import running_cluster
from modyard.testing.services import ServiceProcess, service_process

#: A configuration with a secret, a choice, a number and a flag: the install form shows each.
CONFIG: dict[str, Any] = {
    "schema": {
        "type": "object",
        "required": ["apiKey"],
        "properties": {
            "apiKey": {"type": "string", "writeOnly": True, "description": "From the vendor"},
            "region": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
            "retries": {"type": "integer", "minimum": 0, "default": 3},
            "verbose": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    "fields": [{"name": "apiKey", "type": "password", "secret": True, "required": True}],
}


def module_zip(
    name: str,
    version: str = "1.0.0",
    *,
    config: dict[str, Any] | None = None,
    description: str | None = None,
) -> bytes:
    """A native module with one component, and the given configuration."""
    document: dict[str, Any] = {
        "name": name,
        "version": version,
        "kind": "connector",
        "label": name.title(),
        "description": description or f"The {name} connector, for tests.",
        "extra": {"docs_url": f"https://docs.example.com/{name}"},
        "components": [
            {
                "name": "Send",
                "role": "action",
                "description": "Sends one message.",
                "executor": {"type": "http", "extra": {"path": "/send"}},
            }
        ],
    }
    if config is not None:
        document["config"] = config
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("modyard.yaml", yaml.safe_dump(document))
    return buffer.getvalue()


#: The services the console calls (the gateway has no screen yet).
UPSTREAMS = ("registry", "installer", "runtime", "deployer")


@dataclass(frozen=True)
class Console:
    url: str
    upstreams: Upstreams

    def operator_token(self, subject: str = "operator@example.com") -> str:
        return mint_token(CommonSettings(), subject=subject, roles=[Role.operator])


@dataclass(frozen=True)
class Upstreams:
    processes: dict[str, ServiceProcess]
    #: The environment that points a process at them (and at the same infrastructure).
    env: dict[str, str]
    namespace: str


@asynccontextmanager
async def upstream_cluster(infra_env: Mapping[str, str]) -> AsyncIterator[Upstreams]:
    """The four services the console calls, each told where the others listen."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"bo{suffix}"
    env = {
        **infra_env,
        "MODYARD_DEPLOYER_NAMESPACE": namespace,
        "MODYARD_DEPLOYER_STABLE_SECONDS": "1",
        # Webhook deliveries are recorded, never sent: the console only lists them.
        "MODYARD_RUNTIME_WEBHOOK_DELIVERY_ENABLED": "false",
    }
    async with running_cluster(env, services=UPSTREAMS, schema_suffix=f"bo_{suffix}") as cluster:
        yield Upstreams(
            processes=cluster.processes, env=cluster.env[UPSTREAMS[0]], namespace=namespace
        )


@asynccontextmanager
async def console_cluster(infra_env: Mapping[str, str]) -> AsyncIterator[Console]:
    """The upstream services and the backoffice as a process in front of them."""
    async with (
        upstream_cluster(infra_env) as upstreams,
        service_process("backoffice", upstreams.env) as backoffice,
    ):
        yield Console(url=backoffice.url, upstreams=upstreams)
