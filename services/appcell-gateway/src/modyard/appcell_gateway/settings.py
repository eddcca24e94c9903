from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, SecretKeysSettings


class GatewaySettings(SecretKeysSettings):
    """Settings of the appcell-gateway service: ``MODYARD_APPCELL_GATEWAY_*``, falling back to
    ``MODYARD_*`` (``MODYARD_GATEWAY_*`` is still read, with a warning, for one release).

    ``MODYARD_APPCELL_GATEWAY_SECRET_KEYS`` (from :class:`SecretKeysSettings`) encrypts the cells'
    broker passwords at rest.
    """

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_APPCELL_GATEWAY_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "appcell-gateway"
    #: The prefix before the package took the folder's name (read, with a warning, until 0.3).
    former_env_prefix: ClassVar[str | None] = "MODYARD_GATEWAY_"
    default_port: ClassVar[int] = 8004

    #: How long a cell may take to answer one request (HTTP 504 / AMQP 504 after that).
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: Seconds a process trusts its compiled copy of a cell before checking the stored revision
    #: (another replica may have handled an install or removal event).
    catalogue_refresh_seconds: float = Field(default=2.0, ge=0)
    #: Seconds the installation's effective configuration is reused between requests. Every
    #: process drops its copy at once on the installation's ``configured``, ``upgraded`` or
    #: ``removed`` event (consumers.installation_news), and all copies after a lost broker
    #: connection: this bounds only what no event announces, the installer's environment
    #: overrides (``APP_CONFIG_…``, changed by restarting it) and its storage token.
    settings_cache_seconds: float = Field(default=60.0, ge=0)
    #: Requests handled at once from the AMQP ingress queue (its prefetch).
    ingress_prefetch: int = Field(default=64, ge=1, le=10_000)
    #: Request log: rows written per batch, how often, and for how long they are kept. Small,
    #: frequent batches: writing one holds the event loop for a few microseconds per row, and a
    #: batch of thousands showed in the latency of the requests served meanwhile.
    request_log_batch_size: int = Field(default=250, ge=1, le=10_000)
    request_log_flush_seconds: float = Field(default=0.25, gt=0)
    request_log_retention_hours: float = Field(default=24 * 7, gt=0)
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    installer_timeout_seconds: float = Field(default=5.0, gt=0)
    management_timeout_seconds: float = Field(default=10.0, gt=0)
    #: The broker as cells reach it, ``host[:port]``, when that differs from the gateway's own
    #: ``amqp_url`` (compose service names, in-cluster DNS, a TLS ingress): cell credentials name
    #: it instead. Empty: the host and port of ``amqp_url``.
    cell_broker_address: str = ""
    default_page_size: int = Field(default=50, ge=1, le=500)
