from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, Environment, ServiceSettings

#: Fernet key used when none is configured; refused in production.
DEVELOPMENT_SECRET_KEY = "bW9keWFyZC1kZXZlbG9wbWVudC1rZXktMzItYnl0ZXM="  # noqa: S105


class InstallerSettings(ServiceSettings):
    """Settings of the installer service: ``MODYARD_INSTALLER_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_INSTALLER_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "installer"
    default_port: ClassVar[int] = 8002

    #: The platform version module ``requires.platform`` ranges are checked against.
    platform_version: str = "1.0.0"
    #: Fernet keys, comma-separated; the first encrypts, all decrypt (rotate by prepending).
    secret_keys: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    default_page_size: int = Field(default=50, ge=1, le=500)
    #: How long an Idempotency-Key is remembered.
    idempotency_hours: float = Field(default=24.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_keys(self) -> Self:
        if (
            self.environment is Environment.production
            and DEVELOPMENT_SECRET_KEY in self.secret_keys.get_secret_value()
        ):
            raise ValueError(
                "MODYARD_INSTALLER_SECRET_KEYS must hold your own Fernet keys in production "
                "(generate one with `modyard secret-key`)"
            )
        return self
