from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings


class RuntimeSettings(ServiceSettings):
    """Settings of the runtime service: ``MODYARD_RUNTIME_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_RUNTIME_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "runtime"
    default_port: ClassVar[int] = 8003
