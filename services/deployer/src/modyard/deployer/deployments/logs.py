"""Which container's output ``GET /v1/deployments/{ref}/logs`` streams."""

from __future__ import annotations

from modyard.common.errors import Conflict
from modyard.deployer.backend import ContainerBackend
from modyard.deployer.models import Deployment


async def container_for_logs(backend: ContainerBackend, deployment: Deployment) -> str:
    """The newest generation's container: after a failed update, that is the one whose output
    says why it failed (its predecessor keeps serving)."""
    containers = await backend.containers(deployment.id)
    if not containers:
        raise Conflict(
            f"The deployment {deployment.name!r} has no container yet (status "
            f"{deployment.status}); deploy it, then read its logs.",
            slug="no-container",
        )
    newest = max(containers, key=lambda state: (state.generation, state.running))
    return newest.id
