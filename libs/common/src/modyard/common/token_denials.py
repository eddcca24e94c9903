"""Every service following the installer's revoked tokens and workspace removals.

The installer owns both (``POST /v1/tokens/revocations``, ``DELETE /v1/workspaces/{ws}/members/
{subject}``) and serves them together as one small snapshot, ``GET /v1/tokens/denials``: the ids of
revoked tokens that have not expired yet, and the workspaces each subject was removed from. Every
service process asks for it every ``MODYARD_TOKEN_DENIALS_POLL_SECONDS`` (2 s) with the snapshot's
``ETag`` (an unchanged snapshot is a bodiless 304) and swaps it into its
:class:`~modyard.common.tokens.TokenDenials`, which every authentication reads. A poll rather than
an event: every replica needs the whole list (a service's event queue hands each event to one
replica only), a process that starts needs it before it serves anyway, and the list stays small
(revocations are dropped when their token expires, within a day for user tokens).

When the installer cannot be reached the last snapshot stays in force and the failure is logged
once; the installer itself reads its own tables instead (``app.state.token_denials_source``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import structlog

from modyard.common.service_client import ServiceClient
from modyard.common.settings import CommonSettings
from modyard.common.tokens import Denials, TokenDenials

log = structlog.get_logger(__name__)

DENIALS_PATH = "/v1/tokens/denials"


class DenialsSource(Protocol):
    async def fetch(self) -> Denials | None:
        """The current denials, or ``None`` when they did not change since the last fetch."""
        ...

    async def close(self) -> None: ...


def denials_to_json(denials: Denials) -> dict[str, Any]:
    return {
        "revoked": [
            {"jti": jti, "expires_at": expires_at}
            for jti, expires_at in sorted(denials.revoked.items())
        ],
        "excluded": [
            {"subject": subject, "workspace": workspace}
            for subject, workspaces in sorted(denials.excluded.items())
            for workspace in sorted(workspaces)
        ],
    }


def denials_from_json(body: Mapping[str, Any]) -> Denials:
    excluded: dict[str, set[str]] = {}
    for item in body.get("excluded") or []:
        excluded.setdefault(str(item["subject"]), set()).add(str(item["workspace"]))
    return Denials(
        revoked={str(item["jti"]): int(item["expires_at"]) for item in body.get("revoked") or []},
        excluded={subject: frozenset(workspaces) for subject, workspaces in excluded.items()},
    )


class InstallerDenials(ServiceClient):
    """The installer's snapshot over HTTP, as a ``service`` principal, with ``If-None-Match``."""

    PEER = "installer"

    def __init__(
        self, settings: CommonSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.installer_url,
            subject="token-denials",
            timeout=5.0,
            transport=transport,
        )
        self._etag: str | None = None

    async def fetch(self) -> Denials | None:
        headers = self._headers()
        if self._etag:
            headers["If-None-Match"] = self._etag
        response = await self._http.get(DENIALS_PATH, headers=headers)
        if response.status_code == 304:
            return None
        response.raise_for_status()
        denials = denials_from_json(response.json())
        self._etag = response.headers.get("ETag")
        return denials


async def follow(denials: TokenDenials, source: DenialsSource, interval: float) -> None:
    """Keep ``denials`` current from ``source`` until cancelled (then close the source)."""
    failing = False
    try:
        while True:
            try:
                snapshot = await source.fetch()
            except Exception as exc:  # any failure: keep the last snapshot, retry
                if not failing:
                    log.warning("token_denials_unavailable", error=str(exc)[:300])
                failing = True
            else:
                if snapshot is not None:
                    denials.replace(snapshot)
                if failing:
                    log.info("token_denials_restored")
                failing = False
            await asyncio.sleep(interval)
    finally:
        await source.close()


__all__ = [
    "DENIALS_PATH",
    "DenialsSource",
    "InstallerDenials",
    "denials_from_json",
    "denials_to_json",
    "follow",
]
