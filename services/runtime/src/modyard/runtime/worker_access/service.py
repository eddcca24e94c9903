"""Module workers' broker access: one RabbitMQ user and one request queue per installation.

A request to an ``amqp`` component carries the installation's decrypted configuration and its
storage token, so it must reach that installation's worker and nobody else's, and only that
worker's answer may complete it:

- the runtime publishes the request to ``modyard.modules.<installation id>`` (default exchange,
  mandatory), a queue the runtime declares when it issues the worker's credentials;
- the worker logs in as ``modyard-worker.<installation id>``, whose permissions are
  :func:`~modyard.common.bus.management.confined_permissions`: read (and passively declare) that
  queue, publish to ``modyard.modules.replies`` and nothing else, so it can neither take another
  installation's requests nor put messages on another worker's queue (ACCESS_REFUSED);
- the executor accepts a reply only when its ``user_id`` property, which RabbitMQ checks against
  the publishing connection's user, is that worker's user (:mod:`modyard.runtime.executors`).

Issuing credentials sets a new random password: that is also how they rotate. The password is
returned once and not stored; connections logged in with the old one may be closed at the same
time. Revoking deletes the user, closes its connections and deletes its queue (also done when the
installation is removed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.management import BrokerAdminError, BrokerManagement, new_password
from modyard.common.errors import Conflict, NotFound, ServiceUnavailable
from modyard.runtime.models import InstalledComponent

log = structlog.get_logger(__name__)

WORKER_QUEUE_PREFIX = "modyard.modules."
WORKER_USER_PREFIX = "modyard-worker."
#: Where module workers publish their replies (the only thing they may publish to); each runtime
#: process binds its reply queue here under the queue's own name.
REPLIES_EXCHANGE = "modyard.modules.replies"
#: The request header naming that exchange (the SDK's worker replies where it says).
REPLY_EXCHANGE_HEADER = "reply-exchange"


def worker_queue(installation_id: uuid.UUID) -> str:
    return f"{WORKER_QUEUE_PREFIX}{installation_id}"


def worker_user(installation_id: uuid.UUID) -> str:
    return f"{WORKER_USER_PREFIX}{installation_id}"


@dataclass(frozen=True)
class WorkerInstallation:
    installation_id: uuid.UUID
    workspace: str
    slug: str
    module: str


@dataclass(frozen=True)
class IssuedCredentials:
    installation: WorkerInstallation
    amqp_url: str
    vhost: str
    username: str
    queue: str
    reply_exchange: str
    closed_connections: int


async def amqp_installation(session: AsyncSession, workspace: str, slug: str) -> WorkerInstallation:
    """The installation ``slug`` of ``workspace`` whose components run on a module worker."""
    rows = list(
        await session.scalars(
            select(InstalledComponent).where(
                InstalledComponent.workspace == workspace,
                InstalledComponent.slug == slug,
                InstalledComponent.present.is_(True),
            )
        )
    )
    if not rows:
        raise NotFound(
            f"Workspace {workspace!r} has no installation {slug!r} (installed modules reach the "
            "runtime through the installer's events; install it first, or retry in a moment).",
            slug="installation-not-found",
        )
    if not any(row.executor == "amqp" for row in rows):
        executors = sorted({str(row.executor) for row in rows})
        raise Conflict(
            f"{workspace}:{slug} has no component run by a module worker (its executors: "
            f"{', '.join(executors)}); worker credentials are for modules with amqp components.",
            slug="not-a-module-worker",
        )
    first = rows[0]
    return WorkerInstallation(first.installation_id, workspace, slug, first.module)


async def issue(
    management: BrokerManagement,
    installation: WorkerInstallation,
    *,
    close_connections: bool,
    worker_address: str = "",
) -> IssuedCredentials:
    """A new password for the installation's worker user (created with its queue if need be)."""
    user = worker_user(installation.installation_id)
    queue = worker_queue(installation.installation_id)
    password = new_password()
    try:
        await management.ensure_confined(
            user=user, password=password, queue=queue, reply_exchange=REPLIES_EXCHANGE
        )
        closed = (
            await management.close_connections(user, "the module worker's credentials rotated")
            if close_connections
            else 0
        )
    except BrokerAdminError as exc:
        raise ServiceUnavailable(
            f"The broker's management API did not take the worker's user ({exc}); retry shortly.",
            slug="broker-management-unavailable",
        ) from exc
    log.info(
        "module_worker_credentials_issued",
        installation_id=str(installation.installation_id),
        workspace=installation.workspace,
        slug=installation.slug,
        closed_connections=closed,
    )
    return IssuedCredentials(
        installation=installation,
        amqp_url=management.amqp_url_for(user, password, address=worker_address),
        vhost=management.vhost,
        username=user,
        queue=queue,
        reply_exchange=REPLIES_EXCHANGE,
        closed_connections=closed,
    )


async def revoke(management: BrokerManagement, installation_id: uuid.UUID) -> None:
    """The worker's user, connections and queue gone; idempotent."""
    try:
        await management.remove_confined(
            user=worker_user(installation_id),
            queue=worker_queue(installation_id),
            reason="the module worker's access was revoked",
        )
    except BrokerAdminError as exc:
        raise ServiceUnavailable(
            f"The broker's management API did not remove the worker's user ({exc}); retry.",
            slug="broker-management-unavailable",
        ) from exc
    log.info("module_worker_access_revoked", installation_id=str(installation_id))
