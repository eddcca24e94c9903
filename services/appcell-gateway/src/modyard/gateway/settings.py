from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, Environment, ServiceSettings

#: A fixed Fernet key for development only; production refuses to start with it.
DEVELOPMENT_SECRET_KEY = "bW9keWFyZC1nYXRld2F5LWRldmVsb3BtZW50LWtleSE="  # noqa: S105


class GatewaySettings(ServiceSettings):
    """Settings of the appcell-gateway service: ``MODYARD_GATEWAY_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_GATEWAY_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "appcell-gateway"
    default_port: ClassVar[int] = 8004

    #: Fernet keys for the cells' broker passwords, comma-separated; the first encrypts, all
    #: decrypt (rotate by prepending a new key).
    secret_keys: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    #: How long a cell may take to answer one request (HTTP 504 / AMQP 504 after that).
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: Seconds a process trusts its compiled copy of a cell before checking the stored revision
    #: (another replica may have handled an install or removal event).
    catalogue_refresh_seconds: float = Field(default=2.0, ge=0)
    #: Seconds the installation's effective configuration is reused between requests; a
    #: ``configured`` event handled by this process drops it at once.
    settings_cache_seconds: float = Field(default=5.0, ge=0)
    #: Requests handled at once from the AMQP ingress queue (its prefetch).
    ingress_prefetch: int = Field(default=64, ge=1, le=10_000)
    #: Request log: rows written per batch, how often, and for how long they are kept.
    request_log_batch_size: int = Field(default=1000, ge=1, le=10_000)
    request_log_flush_seconds: float = Field(default=1.0, gt=0)
    request_log_retention_hours: float = Field(default=24 * 7, gt=0)
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    installer_timeout_seconds: float = Field(default=5.0, gt=0)
    management_timeout_seconds: float = Field(default=10.0, gt=0)
    default_page_size: int = Field(default=50, ge=1, le=500)

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> Self:
        if (
            self.environment is Environment.production
            and DEVELOPMENT_SECRET_KEY in self.secret_keys.get_secret_value()
        ):
            raise ValueError(
                "MODYARD_GATEWAY_SECRET_KEYS must hold your own Fernet keys in production "
                "(generate one with `modyard secret-key`)"
            )
        return self
