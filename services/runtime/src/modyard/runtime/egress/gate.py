"""The runtime's egress gate: the deployment's policy, each workspace's allow-list, and the
HTTP clients every steerable outbound call of the runtime uses.

``core.http``, automations' ``fetch`` and the http executor ask :func:`current` (installed by
the app at startup; a policy from the environment, without workspace allow-lists, where no app
runs, as in unit tests). System webhooks are deployment-wide: they use the base policy.
"""

from __future__ import annotations

from typing import Any, Final

import structlog

from modyard.common.db.database import Database
from modyard.common.egress.aiohttp_client import EgressClient, EgressClients
from modyard.common.egress.policy import Allowance, EgressPolicy, EgressRefused
from modyard.common.settings import CommonSettings
from modyard.common.single_flight import ExpiringCopies
from modyard.runtime.components.base import ComponentError
from modyard.runtime.egress.service import allowance_of, get_allow_list

log = structlog.get_logger(__name__)

USER_AGENT: Final = "modyard-runtime"
#: Seconds a replica trusts its copy of a workspace's allow-list: a PUT's ``egress.changed`` event
#: drops it in every replica at once; this bounds what no event announced.
ALLOWANCE_CACHE_SECONDS: Final = 5.0
KIND_EGRESS_REFUSED: Final = "egress-refused"


class RuntimeEgress:
    def __init__(
        self,
        policy: EgressPolicy,
        database: Database | None = None,
        *,
        cache_seconds: float = ALLOWANCE_CACHE_SECONDS,
        clients: EgressClients | None = None,
    ) -> None:
        self.policy = policy
        self.clients = clients or EgressClients(policy, headers={"user-agent": USER_AGENT})
        self._database = database
        #: Each workspace's list, read once at a time and shared by every call that needs it:
        #: when a copy expired under load, each execution in flight (hundreds) read the list
        #: itself, one ORM transaction each (2 % of the runtime's CPU in bench runtime's clean
        #: run). A read in flight when the list is put answers its waiters but is not kept.
        self._lists: ExpiringCopies[str, Allowance | None] = ExpiringCopies(
            "allow-list", self._read, cache_seconds, max_entries=10_000
        )

    async def allowance(self, workspace: str | None) -> Allowance | None:
        """``workspace``'s own allow-list (cached a few seconds), ``None`` when it has none."""
        if workspace is None or self._database is None:
            return None
        return await self._lists.get(workspace)

    async def _read(self, workspace: str) -> Allowance | None:
        assert self._database is not None  # allowance() reads only with one
        async with self._database.transaction() as session:
            return allowance_of(await get_allow_list(session, workspace))

    def forget(self, workspace: str) -> None:
        # A read in progress may have the old list: later calls read again.
        self._lists.forget(workspace)

    def forget_all(self) -> None:
        self._lists.forget_all()

    async def client(self, workspace: str | None, extra: Allowance | None = None) -> EgressClient:
        allowance = await self.allowance(workspace)
        if extra is not None:
            allowance = extra if allowance is None else allowance | extra
        return self.clients.client(allowance)

    async def aclose(self) -> None:
        await self.clients.aclose()


def refused(exc: EgressRefused, **where: Any) -> ComponentError:
    """``exc`` as a failure that is never retried, logged with where it happened (workspace,
    flow, node, URL)."""
    log.warning("egress_refused", rule=exc.rule, detail=exc.detail, **where)
    return ComponentError(
        exc.detail,
        retryable=False,
        status=403,
        details={"kind": KIND_EGRESS_REFUSED, **exc.problem()},
    )


_current: RuntimeEgress | None = None
#: Made by :func:`current` where no app installed a gate (unit tests, scripts); its clients are
#: closed by :func:`release`, or they outlive their event loop ("Unclosed client session").
_fallback: RuntimeEgress | None = None


def install(egress: RuntimeEgress | None) -> None:
    """Make ``egress`` the runtime's gate (the app at startup; ``None`` at shutdown)."""
    global _current
    _current = egress


def current() -> RuntimeEgress:
    """The installed gate, else one from the environment's settings (no workspace lists)."""
    global _fallback
    if _current is not None:
        return _current
    if _fallback is None:
        _fallback = RuntimeEgress(EgressPolicy.from_settings(CommonSettings()))
    return _fallback


async def release(own: RuntimeEgress | None) -> None:
    """Close the clients a user of the gate opened: ``own`` if it was given a gate of its own,
    else the fallback it borrowed from :func:`current` (reopened on next use). The installed
    gate is the app's, closed at its shutdown."""
    if own is not None:
        await own.aclose()
    elif _current is None and _fallback is not None:
        await _fallback.aclose()
