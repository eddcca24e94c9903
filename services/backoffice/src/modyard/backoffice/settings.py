from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, Environment, ServiceSettings


class BackofficeSettings(ServiceSettings):
    """Settings of the backoffice: ``MODYARD_BACKOFFICE_*``, falling back to ``MODYARD_*``.

    The backoffice keeps no data of its own: it signs operators in with a token it verifies with
    the shared ``MODYARD_JWT_SECRET`` and calls the other services at their ``MODYARD_*_URL``.
    """

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_BACKOFFICE_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "backoffice"
    default_port: ClassVar[int] = 8006

    #: The cookies' ``Secure`` flag (sent over HTTPS only). Unset: on everywhere but
    #: ``MODYARD_ENVIRONMENT=development``/``test`` (plain-HTTP consoles on 127.0.0.1);
    #: production refuses ``false``.
    cookie_secure: bool | None = None
    #: The workspace the console shows until the operator picks another.
    default_workspace: str = "default"
    #: How long a call to another service may take (an install resolves dependencies).
    upstream_timeout_seconds: float = Field(default=60.0, gt=0)
    #: The largest module archive the Upload screen accepts (the registry has its own cap too).
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    #: How often the Deployments screen refreshes statuses and logs (htmx polling).
    poll_seconds: float = Field(default=2.0, gt=0)

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment not in (Environment.development, Environment.test)

    @model_validator(mode="after")
    def _production_cookies_are_secure(self) -> Self:
        if self.environment is Environment.production and self.cookie_secure is False:
            raise ValueError(
                "MODYARD_BACKOFFICE_COOKIE_SECURE=false is refused when MODYARD_ENVIRONMENT="
                "production: serve the console over HTTPS and leave the setting unset"
            )
        return self
