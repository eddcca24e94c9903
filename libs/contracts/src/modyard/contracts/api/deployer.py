"""The deployer's answers (``/v1/deployments``)."""

from __future__ import annotations

from modyard.contracts.api import ApiModel, Timestamp


class DeploymentOut(ApiModel):
    id: str
    name: str
    #: The full reference deployed (repository and tag or digest).
    image: str
    tag: str | None
    digest: str | None
    registry_host: str
    token_id: str
    #: Names of the environment variables (not values).
    env_names: list[str]
    port: int | None
    #: http://127.0.0.1:{port} while the deployment is running, else null.
    endpoint: str | None
    capabilities: list[str]
    user: str | None
    writable_paths: list[str] | None
    memory_limit_mb: int | None
    cpu_limit: float | None
    pids_limit: int | None
    #: running, suspended, deleted…
    desired: str
    #: The status (``warn`` when it needs someone; ``reason`` says why).
    status: str
    reason: str | None
    since: Timestamp
    progress: str | None
    restarts: int
    next_restart_at: Timestamp | None
    generation: int
    serving_generation: int | None
    #: The image of the generation that serves (differs from image after a failed update).
    serving_image: str | None
    created_at: Timestamp
    updated_at: Timestamp


class DeploymentPage(ApiModel):
    items: list[DeploymentOut]
    #: Pass as ?cursor= for the next page; null at the end.
    next_cursor: str | None
