from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, SecretKeysSettings


class DeployerSettings(SecretKeysSettings):
    """Settings of the deployer service: ``MODYARD_DEPLOYER_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_DEPLOYER_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "deployer"
    default_port: ClassVar[int] = 8005

    # ``secret_keys`` (MODYARD_DEPLOYER_SECRET_KEYS) encrypt the registry token and the env.
    default_page_size: int = Field(default=50, ge=1, le=500)
    #: Prefix of container and volume names and the value of the ``modyard.namespace`` label:
    #: two deployers (or two test sessions) on one Docker host never touch each other's containers.
    namespace: str = Field(default="modyard", pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")

    #: A started container counts as up once it has run this long (and is healthy, if the image
    #: has a health check).
    stable_seconds: float = Field(default=3.0, ge=0)
    #: How long a new container may take to report healthy before the rollout fails.
    health_timeout_seconds: float = Field(default=120.0, gt=0)
    #: CrashLoopBackOff: the first restart delay, doubled per crash up to the cap; a container
    #: that stays up ``backoff_reset_seconds`` starts again from the first delay.
    backoff_base_seconds: float = Field(default=10.0, gt=0)
    backoff_cap_seconds: float = Field(default=300.0, gt=0)
    backoff_reset_seconds: float = Field(default=600.0, gt=0)
    #: Every deployment is compared with Docker at least this often (besides Docker's events).
    resync_interval_seconds: float = Field(default=30.0, gt=0)
    #: Grace period between SIGTERM and SIGKILL when a container is stopped.
    stop_timeout_seconds: int = Field(default=10, ge=0, le=600)

    #: Resource limits of every deployed container.
    memory_limit_mb: int = Field(default=512, ge=6)
    cpu_limit: float = Field(default=1.0, gt=0)
    pids_limit: int = Field(default=512, ge=1)
    log_max_size: str = "10m"
    #: Where the deployment's data volume is mounted in its container.
    data_path: str = "/data"
