"""The container backend interface: what the reconciler needs from a container platform.

:class:`~modyard.deployer.docker_backend.DockerBackend` implements it on one Docker host. A
Kubernetes backend (see docs/architecture.md) would implement the same protocol: the reconciler
only deals in deployments, generations and the observed state of their containers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

#: Labels every container and volume of a deployment carries (adoption finds them by these).
LABEL_NAMESPACE = "modyard.namespace"
LABEL_DEPLOYMENT_ID = "modyard.deployment.id"
LABEL_DEPLOYMENT_NAME = "modyard.deployment.name"
LABEL_GENERATION = "modyard.deployment.generation"


class BackendError(Exception):
    """A failure told in words an operator can act on (it becomes a deployment's ``reason``)."""


class RegistryAuthFailed(BackendError):
    """The registry refused the token."""


class ImageNotFound(BackendError):
    """The registry has no such repository or tag."""


class RegistryUnreachable(BackendError):
    """The registry host does not answer."""


class BackendUnavailable(BackendError):
    """The container platform itself does not answer; the reconciler retries later."""


@dataclass(frozen=True)
class RegistryCredentials:
    host: str
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Sandbox:
    """How a container is confined (``container_policy.sandbox`` fills it in): it runs as
    ``user`` with only ``capabilities`` (every other one dropped), no new privileges, a read-only
    root file system where only ``writable_paths`` (tmpfs) and the data volume are writable, and
    within these limits."""

    user: str
    capabilities: tuple[str, ...]
    writable_paths: tuple[str, ...]
    tmpfs_size_mb: int
    memory_bytes: int
    nano_cpus: int
    pids_limit: int


@dataclass(frozen=True)
class ContainerSpec:
    """One generation of a deployment, as a container."""

    deployment_id: uuid.UUID
    deployment_name: str
    generation: int
    image: str
    env: Mapping[str, str] = field(repr=False)
    sandbox: Sandbox
    port: int | None = None


@dataclass(frozen=True)
class ContainerState:
    """What the platform reports about one container of a deployment."""

    id: str
    name: str
    deployment_id: uuid.UUID
    deployment_name: str
    generation: int
    running: bool
    image_id: str = ""
    exit_code: int | None = None
    #: ``starting``, ``healthy``, ``unhealthy``, or None without a health check.
    health: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    oom_killed: bool = False
    error: str = ""


ProgressCallback = Callable[[str], Awaitable[None]]


class ContainerBackend(Protocol):
    async def pull(
        self,
        image: str,
        credentials: RegistryCredentials,
        progress: ProgressCallback | None = None,
    ) -> bool:
        """Fetch ``image`` with the credentials (raises a :class:`BackendError` subclass).

        False when the registry confirmed the local copy, so that nothing changed on the host.
        """

    async def image_id(self, image: str) -> str | None:
        """The local image's id, or None when the host does not have it."""

    async def containers(self, deployment_id: uuid.UUID | None = None) -> list[ContainerState]:
        """This deployer's containers (of one deployment, or all), whatever their state."""

    async def create(self, spec: ContainerSpec) -> ContainerState:
        """Create (not start) the container of ``spec``; an existing one of it is reused."""

    async def inspect(self, container_id: str) -> ContainerState | None: ...

    async def start(self, container_id: str) -> None: ...

    async def stop(self, container_id: str) -> None: ...

    async def remove(self, container_id: str) -> None: ...

    async def remove_data(self, deployment_id: uuid.UUID, deployment_name: str) -> None:
        """Delete the deployment's data volume."""

    def logs(
        self,
        container_id: str,
        *,
        tail: int | None,
        since: datetime | None,
        follow: bool,
        timestamps: bool,
    ) -> AsyncIterator[bytes]: ...

    def changes(self) -> AsyncIterator[uuid.UUID]:
        """Deployment ids whose containers changed (died, were removed, changed health)."""
        ...

    async def close(self) -> None: ...
