from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, SecretKeysSettings
from modyard.contracts.js_calls import JS_CALL_ANSWER_SECONDS


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
    #: Nodes one delivery may run in process after its own, when the next node is a core
    #: component (engine/worker.py, "Chaining"): each saves a publish, a delivery and an ack. 0
    #: sends every node through the broker. The bound keeps a long or wide flow from holding a
    #: delivery (and one prefetch slot) for the whole run.
    work_chain_limit: int = Field(default=32, ge=0, le=1000)
    #: Global retry policy; flows may override it (``definition.retry_policy``).
    retry_max_attempts: int = Field(default=30, ge=1, le=1000)
    retry_base_delay_seconds: float = Field(default=1.0, gt=0)
    retry_max_delay_seconds: float = Field(default=3600.0, gt=0, le=3600)
    retry_multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    #: How long a module worker may take to answer a component request.
    component_timeout_seconds: float = Field(default=30.0, gt=0)
    #: How long the runtime waits for the JavaScript runner's answer to a ``js`` call (past it
    #: the call is retried): above what the runner takes to stop a Slingr script past its 30 s
    #: limit and report it (``modyard.contracts.js_calls``; the runner's Appmixer deadline is
    #: shorter). At least ``JS_CALL_ANSWER_SECONDS`` (38).
    js_component_timeout_seconds: float = Field(default=40.0, gt=0)
    #: The JavaScript runner's request queue (``js`` components) and the broker user whose
    #: answers alone are taken; empty: this runtime's own user (development shares one).
    js_runner_queue: str = "js-runner.requests"
    js_runner_broker_user: str = ""
    #: Where callers reach this runtime's webhook route (``/v1/hooks/…``), for the URL a webhook
    #: component registers with its vendor (``context.getWebhookUrl()``). Empty: ``runtime_url``.
    hooks_public_url: str = ""
    #: How long a caller of a js webhook component or a Slingr listener waits for its answer
    #: (past it: 504): at least ``JS_CALL_ANSWER_SECONDS`` (a Slingr listener's 30 s limit is
    #: reported as its failure, 502), below ``js_component_timeout_seconds``.
    js_webhook_timeout_seconds: float = Field(default=38.0, gt=0)
    #: The broker as module workers reach it, ``host[:port]``, when that differs from the runtime's
    #: ``amqp_url``: issued worker credentials name it. Empty: the host and port of ``amqp_url``.
    module_worker_broker_address: str = ""
    #: Timeout of the broker's management API (worker users and queues).
    management_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Seconds a process trusts its copies when no event says they changed: every change
    #: through the runtime's API (or an installer event) drops them in every process at once,
    #: once it committed (replica_news.py); these bound what no event announces, e.g. news
    #: missed while the broker was away is covered by dropping every copy on reconnect.
    #: A flow (its status and definition):
    flow_cache_seconds: float = Field(default=1.0, ge=0)
    #: A workspace's automations program (its automations, app settings and app instances):
    program_cache_seconds: float = Field(default=1.0, ge=0)
    #: A workspace's egress allow-list:
    egress_cache_seconds: float = Field(default=5.0, ge=0)
    #: An installation's effective configuration, read from the installer:
    config_cache_seconds: float = Field(default=5.0, ge=0)
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

    @model_validator(mode="after")
    def _js_waits_outlast_the_runner(self) -> Self:
        # The runner stops a Slingr script past its limit and answers within
        # JS_CALL_ANSWER_SECONDS: a shorter wait here would give up (and retry) first.
        if self.js_webhook_timeout_seconds < JS_CALL_ANSWER_SECONDS:
            raise ValueError(
                f"MODYARD_RUNTIME_JS_WEBHOOK_TIMEOUT_SECONDS is {self.js_webhook_timeout_seconds:g}"
                f": set it to at least {JS_CALL_ANSWER_SECONDS:g} s, the longest the JavaScript "
                "runner takes to stop a Slingr script past its limit and report it"
            )
        if self.js_component_timeout_seconds <= self.js_webhook_timeout_seconds:
            raise ValueError(
                "MODYARD_RUNTIME_JS_COMPONENT_TIMEOUT_SECONDS is "
                f"{self.js_component_timeout_seconds:g}: set it above "
                f"MODYARD_RUNTIME_JS_WEBHOOK_TIMEOUT_SECONDS ({self.js_webhook_timeout_seconds:g}"
                "), so that a webhook's caller hears the component's own answer or a 504"
            )
        return self
