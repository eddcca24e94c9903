from __future__ import annotations

from typing import Annotated, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from modyard.common.settings import ENV_FILES, Environment, SecretKeysSettings
from modyard.deployer.container_policy import (
    InvalidDeclaration,
    normalize_capability,
    normalize_registry,
)

#: A comma-separated list in the environment (``A,B``), a list in code.
CommaList = Annotated[list[str], NoDecode]


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

    #: Resource limits of a deployed container that declares none...
    memory_limit_mb: int = Field(default=512, ge=6)
    cpu_limit: float = Field(default=1.0, gt=0)
    pids_limit: int = Field(default=512, ge=1)
    #: ...and the most a deployment may declare.
    max_memory_limit_mb: int = Field(default=4096, ge=6)
    max_cpu_limit: float = Field(default=4.0, gt=0)
    max_pids_limit: int = Field(default=4096, ge=1)
    log_max_size: str = "10m"
    #: Where the deployment's data volume is mounted in its container.
    data_path: str = "/data"

    # -- confinement of deployed containers (docs/deployer.md, "Confinement") -----------------
    #: Registries (``host[:port]``) images may come from; empty means only the platform's own
    #: image registry (``MODYARD_IMAGE_REGISTRY_URL``).
    allowed_registries: CommaList = Field(default_factory=list)
    #: Capabilities a deployment may add back (every container starts with none), e.g.
    #: ``NET_BIND_SERVICE``; empty: none.
    allowed_capabilities: CommaList = Field(default_factory=list)
    #: Whether a deployment may run as uid 0 (or gid 0); otherwise it runs as ``default_user``
    #: or the non-root ``uid[:gid]`` it declares.
    allow_root: bool = False
    default_user: str = Field(default="65534:65534", pattern=r"^[1-9][0-9]{0,9}:[1-9][0-9]{0,9}$")
    #: Size of each writable tmpfs (``/tmp`` or the declared ``writable_paths``).
    tmpfs_size_mb: int = Field(default=64, ge=1, le=65536)
    #: Whether programs may be run from those tmpfs paths (Docker mounts them ``noexec``): with a
    #: read-only root, ``false`` means a container runs only what its image holds.
    tmpfs_exec: bool = False
    #: The bridge network deployed containers join (created by the deployer); default
    #: ``<namespace>-modules``.
    network: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    #: Run containers on the host's network instead (their ports are then the host's, and they
    #: reach everything on 127.0.0.1): a development convenience, refused in production.
    host_network: bool = False

    @field_validator("allowed_registries", "allowed_capabilities", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_registries")
    @classmethod
    def _registries(cls, value: list[str]) -> list[str]:
        return [normalize_registry(item) for item in value]

    @field_validator("allowed_capabilities")
    @classmethod
    def _capabilities(cls, value: list[str]) -> list[str]:
        try:
            return sorted({normalize_capability(item) for item in value})
        except InvalidDeclaration as exc:
            raise ValueError(f"MODYARD_DEPLOYER_ALLOWED_CAPABILITIES: {exc.detail}") from None

    @model_validator(mode="after")
    def _confinement(self) -> Self:
        if self.host_network and self.environment is Environment.production:
            raise ValueError(
                "MODYARD_DEPLOYER_HOST_NETWORK=true is refused when MODYARD_ENVIRONMENT="
                "production: containers on the host network reach the broker, the database and "
                "every service on 127.0.0.1; leave it unset (deployed containers then run on "
                "their own bridge network)"
            )
        for default, cap in (
            ("memory_limit_mb", "max_memory_limit_mb"),
            ("cpu_limit", "max_cpu_limit"),
            ("pids_limit", "max_pids_limit"),
        ):
            if getattr(self, default) > getattr(self, cap):
                raise ValueError(
                    f"MODYARD_DEPLOYER_{default.upper()} is above "
                    f"MODYARD_DEPLOYER_{cap.upper()}: raise the cap or lower the default"
                )
        return self

    @property
    def registries(self) -> list[str]:
        """The registries images may come from (the platform's own when none is configured)."""
        if self.allowed_registries:
            return self.allowed_registries
        return [normalize_registry(urlsplit(self.image_registry_url).netloc.rsplit("@", 1)[-1])]

    @property
    def network_name(self) -> str:
        return self.network or f"{self.namespace}-modules"
