from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings


class DeployerSettings(ServiceSettings):
    """Settings of the deployer service: ``MODYARD_DEPLOYER_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_DEPLOYER_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "deployer"
    default_port: ClassVar[int] = 8005
