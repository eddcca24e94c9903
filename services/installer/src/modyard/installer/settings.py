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
    js_runner_timeout_seconds: float = Field(default=30.0, gt=0)
    #: Refresh an OAuth access token this long before it expires.
    oauth_refresh_margin_seconds: float = Field(default=60.0, ge=0)
    #: Where providers send the user back (``…/v1/oauth/callback`` of this installer as the
    #: browser reaches it); empty: this installer's own ``installer_url``.
    oauth_callback_url: str = ""
    #: How long a started OAuth connection may take.
    oauth_connect_minutes: float = Field(default=15.0, gt=0)
    #: How long an Idempotency-Key is remembered.
    idempotency_hours: float = Field(default=24.0, gt=0)
