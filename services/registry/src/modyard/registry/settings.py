from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings


class RegistrySettings(ServiceSettings):
    """Settings of the registry service: ``MODYARD_REGISTRY_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_REGISTRY_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "registry"
    default_port: ClassVar[int] = 8001
