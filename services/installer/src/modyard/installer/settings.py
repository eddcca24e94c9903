from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, SecretKeysSettings


class InstallerSettings(SecretKeysSettings):
    """Settings of the installer service: ``MODYARD_INSTALLER_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_INSTALLER_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "installer"
    default_port: ClassVar[int] = 8002

    #: The platform version module ``requires.platform`` ranges are checked against.
    platform_version: str = "1.0.0"
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    default_page_size: int = Field(default=50, ge=1, le=500)
    #: How long an Idempotency-Key is remembered.
    idempotency_hours: float = Field(default=24.0, gt=0)
