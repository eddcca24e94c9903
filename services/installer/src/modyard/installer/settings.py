from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings


class InstallerSettings(ServiceSettings):
    """Settings of the installer service: ``MODYARD_INSTALLER_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_INSTALLER_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "installer"
    default_port: ClassVar[int] = 8002
