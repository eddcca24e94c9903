"""Request and response models of the deployer API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from modyard.deployer.models import Desired, Status

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_ENV_VARIABLES = 200
MAX_ENV_VALUE = 32_768


class Confinement(BaseModel):
    """What a deployment declares beyond the confined defaults, within the operator's settings
    (docs/deployer.md, "Confinement"); left out, the defaults apply."""

    capabilities: list[str] = Field(
        default_factory=list,
        max_length=41,
        description="Linux capabilities to add back (all are dropped), among those an operator "
        "allowed (MODYARD_DEPLOYER_ALLOWED_CAPABILITIES)",
        examples=[["NET_BIND_SERVICE"]],
    )
    user: str | None = Field(
        default=None,
        max_length=21,
        description="uid or uid:gid to run as (default 65534:65534); root only if an operator "
        "allows it (MODYARD_DEPLOYER_ALLOW_ROOT)",
    )
    writable_paths: list[str] | None = Field(
        default=None,
        description="Paths given a writable tmpfs on the otherwise read-only root file system "
        "(default: /tmp); the data volume is always writable",
    )
    memory_limit_mb: int | None = Field(default=None, ge=6, description="Default: the deployer's")
    cpu_limit: float | None = Field(default=None, gt=0, description="CPUs; default: the deployer's")
    pids_limit: int | None = Field(default=None, ge=1, description="Default: the deployer's")


class DeploymentCreate(Confinement):
    """A container module to deploy from a private registry (OneEntry's module form)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Lower-case letters, digits and '-'")
    image: str = Field(
        min_length=1,
        max_length=512,
        description="host/user/repo:version (or @sha256:… to pin a digest)",
        examples=["registry.example.com/team/my-module:1.0.0"],
    )
    tag: str | None = Field(
        default=None,
        max_length=128,
        description="The version (image tag) to deploy; defaults to the image's own tag",
    )
    registry_host: str = Field(
        min_length=1, max_length=255, description="The registry host; repeats the image's host"
    )
    token_id: str = Field(min_length=1, max_length=255, description="The token's name (user)")
    token: SecretStr = Field(description="The registry token; stored encrypted, never returned")
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables; values are stored encrypted"
    )
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The port the module listens on, on 127.0.0.1 (given to it as $PORT)",
    )


class DeploymentPatch(BaseModel):
    """A new version and/or environment (or confinement): a running deployment is redeployed
    with it. A confinement field sent as null goes back to the default."""

    model_config = ConfigDict(extra="forbid")

    tag: str | None = Field(default=None, max_length=128)
    env: dict[str, str] | None = Field(default=None, description="Replaces the whole environment")
    token_id: str | None = Field(default=None, min_length=1, max_length=255)
    token: SecretStr | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    capabilities: list[str] | None = Field(default=None, max_length=41)
    user: str | None = Field(default=None, max_length=21)
    writable_paths: list[str] | None = None
    memory_limit_mb: int | None = Field(default=None, ge=6)
    cpu_limit: float | None = Field(default=None, gt=0)
    pids_limit: int | None = Field(default=None, ge=1)


class DeploymentOut(BaseModel):
    id: uuid.UUID
    name: str
    image: str = Field(description="The full reference deployed (repository and tag or digest)")
    tag: str | None
    digest: str | None
    registry_host: str
    token_id: str
    env_names: list[str] = Field(description="Names of the environment variables (not values)")
    port: int | None
    endpoint: str | None = Field(
        description="http://127.0.0.1:{port} while the deployment is running, else null"
    )
    capabilities: list[str] = Field(description="Capabilities added back (all others dropped)")
    user: str | None = Field(description="The declared uid:gid; null: the deployer's default")
    writable_paths: list[str] | None = Field(description="Writable tmpfs paths; null: /tmp")
    memory_limit_mb: int | None = Field(description="Declared; null: the deployer's default")
    cpu_limit: float | None
    pids_limit: int | None
    desired: Desired
    status: Status
    reason: str | None = Field(description="Why the status is warn, in words to act on")
    since: datetime = Field(description="When the status last changed")
    progress: str | None = Field(description="What the deployer is doing now (e.g. pulling)")
    restarts: int = Field(description="Restarts after crashes or failed health checks")
    next_restart_at: datetime | None
    generation: int
    serving_generation: int | None
    serving_image: str | None = Field(
        description="The image of the generation that serves (differs from image after a failed update)"
    )
    created_at: datetime
    updated_at: datetime


class DeploymentPage(BaseModel):
    items: list[DeploymentOut]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )
