"""Typed settings shared by every service.

Values come from the environment. A setting can be given for one service with that service's
sub-prefix (``MODYARD_REGISTRY_DATABASE_URL``) or for all services at once with the plain prefix
(``MODYARD_DATABASE_URL``); the service-specific one wins. ``.env`` and ``.run/infra.env`` (written by
``modyard dev infra up``) are read too, so a developer never has to export anything by hand.
"""

from __future__ import annotations

import warnings
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

if TYPE_CHECKING:
    from modyard.common.secrets import SecretBox

ENV_PREFIX = "MODYARD_"
DEVELOPMENT_JWT_SECRET = "modyard-development-secret-change-me-in-production"  # noqa: S105
#: The user and password of the development infrastructure (``make infra``): refused in production.
DEVELOPMENT_USER = "modyard"
DEVELOPMENT_PASSWORD = "modyard"  # noqa: S105
ENV_FILES = (".env", ".run/infra.env")


def _has_development_password(url: str, *, refused: tuple[str | None, ...] = ()) -> bool:
    """True when ``url`` logs in with the development password (or one of ``refused``)."""
    return urlsplit(url).password in (DEVELOPMENT_PASSWORD, *refused)


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class CommonSettings(BaseSettings):
    """Settings every service and the CLI understand, read with the plain ``MODYARD_`` prefix."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILES,
        env_file_encoding="utf-8",
        extra="ignore",
    )

    environment: Environment = Environment.development
    database_url: str = "postgresql+asyncpg://modyard:modyard@127.0.0.1:5432/modyard"
    amqp_url: str = "amqp://modyard:modyard@127.0.0.1:5672/modyard"
    amqp_management_url: str = "http://127.0.0.1:15672"
    #: The broker user the services manage cells' and module workers' users with (management
    #: API), kept apart from ``amqp_url``'s, which moves messages. Empty: ``amqp_url``'s user.
    amqp_management_username: str = ""
    amqp_management_password: SecretStr = SecretStr("")
    docker_host: str = "unix:///var/run/docker.sock"
    image_registry_url: str = "http://127.0.0.1:5000"
    image_registry_username: str = "modyard"
    image_registry_password: SecretStr = SecretStr("modyard")

    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    jwt_issuer: str = "modyard"
    jwt_audience: str = "modyard"
    #: HMAC only: the services share ``jwt_secret``, and their PyJWT runs without cryptography's
    #: asymmetric keys (modyard.common.lean_process).
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"

    #: Bearer token the CLI and SDK send; without it the CLI mints one from ``jwt_secret``.
    token: SecretStr | None = None
    #: The longest life (``exp - iat``) of a user token: longer ones are refused by every service
    #: and not minted by ``modyard token``.
    token_max_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=366 * 24 * 3600)
    #: The same for operator and service tokens.
    operator_token_max_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=366 * 24 * 3600)
    #: How often every service asks the installer for revoked tokens and workspace removals (the
    #: longest a revocation takes to reach it, plus one request).
    token_denials_poll_seconds: float = Field(default=2.0, gt=0, le=300)

    log_level: str = "INFO"
    log_json: bool = True

    registry_url: str = "http://127.0.0.1:8001"
    installer_url: str = "http://127.0.0.1:8002"
    runtime_url: str = "http://127.0.0.1:8003"
    gateway_url: str = "http://127.0.0.1:8004"
    deployer_url: str = "http://127.0.0.1:8005"
    #: The operators' web console: no service calls it, but `modyard status` checks it here.
    backoffice_url: str = "http://127.0.0.1:8006"
    #: The JavaScript runner: the installer runs modules' auth.js there (docs/accounts.md); every
    #: service refuses it as an egress destination like the others.
    js_runner_url: str = "http://127.0.0.1:8007"

    # Egress policy (modyard.common.egress): what outbound calls tenants and modules steer may
    # reach beyond public addresses. Comma-separated lists; the platform's own endpoints above
    # stay refused whatever these allow.
    #: Networks allowed whatever their range (``10.20.0.0/16,2001:db8::/32``).
    egress_allow_cidrs: str = ""
    #: Host names whose private addresses are allowed (``api.corp.example,*.svc.example``).
    egress_allow_hosts: str = ""
    #: Destination ports allowed; empty: every port.
    egress_allow_ports: str = ""
    #: Loopback destinations: only the dev runner and the tests set it.
    egress_allow_loopback: bool = False

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Self:
        if self.environment is not Environment.production:
            return self
        # Every problem at once, so that an operator fixes the deployment in one go.
        problems = self.production_problems()
        if problems:
            raise ValueError(
                "; ".join(problems) + " when MODYARD_ENVIRONMENT=production "
                "(a service's own MODYARD_<SERVICE>_* setting counts as well)"
            )
        return self

    def production_problems(self) -> list[str]:
        """What production refuses in these settings, each saying what to set (subclasses add
        their own and call this)."""
        problems = []
        secret = self.jwt_secret.get_secret_value()
        if secret == DEVELOPMENT_JWT_SECRET or len(secret) < 32:
            problems.append(
                "MODYARD_JWT_SECRET must be set to a random value of at least 32 characters"
            )
        # A database URL without a password may take it from PGPASSWORD or a .pgpass file; an
        # AMQP URL without one logs in as RabbitMQ's guest.
        for setting, url, refused in (
            ("MODYARD_DATABASE_URL", self.database_url, ()),
            ("MODYARD_AMQP_URL", self.amqp_url, (None, "", "guest")),
        ):
            if _has_development_password(url, refused=refused):
                problems.append(
                    f"{setting} must name your own user and password, not the development "
                    f"'{DEVELOPMENT_USER}:{DEVELOPMENT_PASSWORD}'"
                )
        if self.image_registry_password.get_secret_value() == DEVELOPMENT_PASSWORD:
            problems.append(
                "MODYARD_IMAGE_REGISTRY_PASSWORD must be set to your image registry's password, "
                f"not the development '{DEVELOPMENT_PASSWORD}'"
            )
        return problems

    @model_validator(mode="after")
    def _egress_lists_parse(self) -> Self:
        # Refused at startup, not on the first outbound call.
        from modyard.common.egress.policy import parse_cidr, parse_host_pattern, split_list

        try:
            for item in split_list(self.egress_allow_cidrs):
                parse_cidr(item)
            for item in split_list(self.egress_allow_hosts):
                parse_host_pattern(item)
            for item in split_list(self.egress_allow_ports):
                if not item.isdigit() or not 0 < int(item) < 65536:
                    raise ValueError(f"{item!r} is not a port (1-65535)")
        except ValueError as exc:
            raise ValueError(f"MODYARD_EGRESS_ALLOW_*: {exc}") from None
        return self

    def service_urls(self) -> dict[str, str]:
        """Base URL of each service, keyed by service name."""
        return {
            "registry": self.registry_url,
            "installer": self.installer_url,
            "runtime": self.runtime_url,
            "appcell-gateway": self.gateway_url,
            "deployer": self.deployer_url,
            "backoffice": self.backoffice_url,
            "js-runner": self.js_runner_url,
        }


class _Renamed:
    """A settings source under a service's former prefix: read, with a deprecation warning."""

    env_prefix: str
    current_prefix: str

    settings_cls: type[BaseSettings]

    def _warn(self, data: dict[str, Any]) -> dict[str, Any]:
        # A .env source hands back the file's other lines too (the shared MODYARD_* ones):
        # only the settings this prefix actually set are named.
        found = [name for name in data if name in self.settings_cls.model_fields]
        if found:
            names = ", ".join(sorted(self.env_prefix + name.upper() for name in found))
            warnings.warn(
                f"{names}: the {self.env_prefix} prefix is deprecated and read for one more "
                f"release; rename to {self.current_prefix}",
                # FutureWarning, not DeprecationWarning: shown by default, to the operator.
                FutureWarning,
                stacklevel=2,
            )
        return data


class _RenamedEnv(_Renamed, EnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        return self._warn(super().__call__())


class _RenamedDotEnv(_Renamed, DotEnvSettingsSource):
    def __call__(self) -> dict[str, Any]:
        return self._warn(super().__call__())


class ServiceSettings(CommonSettings):
    """Base class of one service's settings.

    Subclasses set ``service_name`` and ``model_config["env_prefix"]`` (``MODYARD_<SERVICE>_``).
    A service whose prefix was renamed names the old one in ``former_env_prefix``: it is still
    read (below the new prefix, above the shared ``MODYARD_``), with a deprecation warning.
    """

    service_name: ClassVar[str] = "service"
    former_env_prefix: ClassVar[str | None] = None
    default_port: ClassVar[int] = 8000

    host: str = "127.0.0.1"
    port: int = 0
    #: Proxies whose X-Forwarded-* headers are trusted (comma-separated IPs/CIDRs, or "*").
    forwarded_allow_ips: str = "127.0.0.1"
    db_schema: str = ""
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Test each pooled connection before use (one round trip per checkout); services whose hot
    #: path retries on connection errors anyway can turn it off.
    db_pool_pre_ping: bool = True
    migrate_on_startup: bool = True
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0)
    outbox_retention_hours: float = Field(default=24 * 7, gt=0)
    processed_events_retention_hours: float = Field(default=24 * 30, gt=0)
    consumer_prefetch: int = Field(default=32, ge=1)
    consumer_delivery_limit: int = Field(default=10, ge=1)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    #: The largest request body a route takes unless it declares its own (uploads do): checked
    #: against Content-Length and counted while read (modyard.common.body_limit), 413 beyond.
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: How often gauges of table contents (dead letters, deployments by status) are recounted.
    state_gauges_interval_seconds: float = Field(default=15.0, gt=0)

    def model_post_init(self, __context: object) -> None:
        if not self.port:
            self.port = self.default_port
        if not self.db_schema:
            self.db_schema = self.service_name.replace("-", "_")

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of everything this service emits."""
        return f"/modyard/{self.service_name}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The service's own prefix first, then the shared MODYARD_ prefix as a fallback.
        shared_env = EnvSettingsSource(settings_cls, env_prefix=ENV_PREFIX)
        shared_dotenv = DotEnvSettingsSource(
            settings_cls, env_file=ENV_FILES, env_prefix=ENV_PREFIX
        )
        former: tuple[PydanticBaseSettingsSource, ...] = ()
        former_prefix = getattr(settings_cls, "former_env_prefix", None)
        if former_prefix:
            current = str(settings_cls.model_config.get("env_prefix") or ENV_PREFIX)
            former_env = _RenamedEnv(settings_cls, env_prefix=former_prefix)
            former_dotenv = _RenamedDotEnv(
                settings_cls, env_file=ENV_FILES, env_prefix=former_prefix
            )
            for source in (former_env, former_dotenv):
                source.current_prefix = current
            former = (former_env, former_dotenv)
        return (
            init_settings,
            env_settings,
            *former[:1],
            shared_env,
            dotenv_settings,
            *former[1:],
            shared_dotenv,
            file_secret_settings,
        )


#: Fernet key used when none is configured; refused in production.
DEVELOPMENT_SECRET_KEY = "bW9keWFyZC1kZXZlbG9wbWVudC1rZXktMzItYnl0ZXM="  # noqa: S105


class SecretKeysSettings(ServiceSettings):
    """Settings of a service that stores secrets encrypted (``modyard.common.secrets``)."""

    #: Fernet keys, comma-separated; the first encrypts, all decrypt (rotate by prepending).
    secret_keys: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)

    @property
    def secret_keys_setting(self) -> str:
        """The environment variable that holds the keys, for messages that say what to set."""
        return f"{self.model_config.get('env_prefix') or ENV_PREFIX}SECRET_KEYS"

    def secret_box(self) -> SecretBox:
        """The box that encrypts and decrypts this service's secrets under these keys."""
        from modyard.common.secrets import SecretBox  # cryptography only where it is used

        return SecretBox.from_setting(self.secret_keys, setting=self.secret_keys_setting)

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if DEVELOPMENT_SECRET_KEY in self.secret_keys.get_secret_value():
            problems.append(
                f"{self.secret_keys_setting} must hold your own Fernet keys "
                "(generate one with `modyard secret-key`)"
            )
        return problems
