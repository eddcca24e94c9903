from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, SecretKeysSettings


class RuntimeSettings(SecretKeysSettings):
    """Settings of the runtime service: ``MODYARD_RUNTIME_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_RUNTIME_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "runtime"
    default_port: ClassVar[int] = 8003

    # Every message in flight needs a connection at times: more than the other services.
    db_pool_size: int = Field(default=30, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    # The worker requeues a message on a connection error, so a dead pooled connection costs one
    # retry; pinging before every checkout would cost a round trip on every message.
    db_pool_pre_ping: bool = False
    #: Messages a worker handles at once (the work queue's prefetch).
    work_prefetch: int = Field(default=64, ge=1, le=10_000)
    #: Global retry policy; flows may override it (``definition.retry_policy``).
    retry_max_attempts: int = Field(default=30, ge=1, le=1000)
    retry_base_delay_seconds: float = Field(default=1.0, gt=0)
    retry_max_delay_seconds: float = Field(default=3600.0, gt=0, le=3600)
    retry_multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    #: How long a module worker may take to answer a component request.
    component_timeout_seconds: float = Field(default=30.0, gt=0)
    #: The JavaScript runner's request queue (``js`` components) and the broker user whose
    #: answers alone are taken; empty: this runtime's own user (development shares one).
    js_runner_queue: str = "js-runner.requests"
    js_runner_broker_user: str = ""
    #: Where callers reach this runtime's webhook route (``/v1/hooks/…``), for the URL a webhook
    #: component registers with its vendor (``context.getWebhookUrl()``). Empty: ``runtime_url``.
    hooks_public_url: str = ""
    #: How long a caller of a js webhook component waits for its ``context.response`` (past
    #: it: 504); keep it below ``component_timeout_seconds``.
    js_webhook_timeout_seconds: float = Field(default=25.0, gt=0)
    #: The broker as module workers reach it, ``host[:port]``, when that differs from the runtime's
    #: ``amqp_url``: issued worker credentials name it. Empty: the host and port of ``amqp_url``.
    module_worker_broker_address: str = ""
    #: Timeout of the broker's management API (worker users and queues).
    management_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Seconds a worker trusts its cached copy of a flow (a stop reaches it within this).
    flow_cache_seconds: float = Field(default=1.0, ge=0)
    #: Off only where nothing may leave the machine (the API fuzzing test subscribes generated
    #: URLs): deliveries are still recorded, and stay pending.
    webhook_delivery_enabled: bool = True
    #: Flow event chains (core.emit → core.event): the most emits in one chain, and the events
    #: one workspace may emit per second on average (``event_burst`` at once), per process.
    event_max_depth: int = Field(default=16, ge=1, le=1000)
    event_rate_per_second: float = Field(default=100.0, gt=0)
    event_burst: int = Field(default=500, ge=1)
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    default_page_size: int = Field(default=50, ge=1, le=500)
