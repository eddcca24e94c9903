from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings


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

    #: Set the cookie's ``Secure`` flag: turn on whenever the console is served over HTTPS.
    cookie_secure: bool = False
    #: The workspace the console shows until the operator picks another.
    default_workspace: str = "default"
    #: How long a call to another service may take (an install resolves dependencies).
    upstream_timeout_seconds: float = Field(default=60.0, gt=0)
    #: The largest module archive the Upload screen accepts (the registry has its own cap too).
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    #: How often the Deployments screen refreshes statuses and logs (htmx polling).
    poll_seconds: float = Field(default=2.0, gt=0)
