"""What ``modyard status`` checks: every service's readiness and the infrastructure under it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import asyncpg
import httpx

from modyard.common.settings import CommonSettings
from modyard.sdk.client import SERVICES, ModyardClient
from modyard.sdk.probes import docker_ping, http_status, redact

State = Literal["up", "down", "unavailable"]


@dataclass(frozen=True)
class Check:
    kind: Literal["service", "infrastructure"]
    name: str
    url: str
    state: State
    detail: str
    #: Optional parts (dockerd, the image registry) being absent does not make the status fail.
    required: bool = True


#: What ``modyard status`` probes, each at its ``CommonSettings.service_urls()`` entry: the five
#: services and the operators' console (``MODYARD_BACKOFFICE_URL``), which has no queue and so is
#: not among the ``SERVICES`` a diagnostic ping goes through.
STATUS_SERVICES: tuple[str, ...] = (*SERVICES, "backoffice")


async def service_checks(
    client: ModyardClient, services: Sequence[str] = STATUS_SERVICES
) -> list[Check]:
    async def one(service: str) -> Check:
        url = client.url(service)
        try:
            readiness = await client.readiness(service)
        except (httpx.HTTPError, ValueError) as exc:
            return Check("service", service, url, "down", f"no answer ({type(exc).__name__})")
        checks = ", ".join(f"{name} {value}" for name, value in readiness.checks.items())
        # The backoffice depends on nothing of its own: its /readyz lists no checks.
        detail = checks or ("ready" if readiness.ready else readiness.detail or "not ready")
        return Check("service", service, url, "up" if readiness.ready else "down", detail)

    return list(await asyncio.gather(*(one(service) for service in services)))


async def _postgres(settings: CommonSettings) -> Check:
    shown = redact(settings.database_url)
    try:
        # asyncpg speaks the plain scheme; the settings name SQLAlchemy's driver too.
        _, _, location = settings.database_url.partition("://")
        connection = await asyncpg.connect(f"postgresql://{location}", timeout=3)
        try:
            version = await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()
    except (OSError, ValueError, asyncpg.PostgresError, TimeoutError) as exc:
        return Check("infrastructure", "postgresql", shown, "down", str(exc)[:120])
    return Check("infrastructure", "postgresql", shown, "up", f"PostgreSQL {version}")


async def _rabbitmq(settings: CommonSettings) -> Check:
    amqp = urlsplit(settings.amqp_url)
    auth = (amqp.username or "guest", amqp.password or "guest")
    url = settings.amqp_management_url.rstrip("/") + "/api/overview"
    try:
        async with httpx.AsyncClient(auth=auth, timeout=3) as http:
            response = await http.get(url)
    except httpx.HTTPError as exc:
        return Check(
            "infrastructure", "rabbitmq", redact(settings.amqp_url), "down", type(exc).__name__
        )
    if response.status_code != 200:
        return Check(
            "infrastructure",
            "rabbitmq",
            redact(settings.amqp_url),
            "down",
            f"management API answered {response.status_code}",
        )
    version = response.json().get("rabbitmq_version", "?")
    return Check(
        "infrastructure",
        "rabbitmq",
        redact(settings.amqp_url),
        "up",
        f"RabbitMQ {version}, management at {settings.amqp_management_url}",
    )


async def _docker(settings: CommonSettings) -> Check:
    up = await asyncio.to_thread(docker_ping, settings.docker_host)
    return Check(
        "infrastructure",
        "dockerd",
        settings.docker_host,
        "up" if up else "unavailable",
        "answers /_ping" if up else "not reachable (needed by the deployer only)",
        required=False,
    )


async def _image_registry(settings: CommonSettings) -> Check:
    auth = (settings.image_registry_username, settings.image_registry_password.get_secret_value())
    base = settings.image_registry_url.rstrip("/")
    status = await asyncio.to_thread(http_status, base + "/v2/", auth=auth)
    up = status == 200
    detail = "authenticated /v2/ answers 200" if up else f"/v2/ answered {status or 'nothing'}"
    return Check(
        "infrastructure",
        "image-registry",
        base,
        "up" if up else "unavailable",
        detail,
        required=False,
    )


async def infrastructure_checks(settings: CommonSettings) -> list[Check]:
    return list(
        await asyncio.gather(
            _postgres(settings), _rabbitmq(settings), _docker(settings), _image_registry(settings)
        )
    )


def healthy(checks: list[Check]) -> bool:
    return all(check.state == "up" for check in checks if check.required)
