from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings


class GatewaySettings(ServiceSettings):
    """Settings of the appcell-gateway service: ``MODYARD_GATEWAY_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_GATEWAY_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "appcell-gateway"
    default_port: ClassVar[int] = 8004
