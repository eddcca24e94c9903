"""What the gateway asks other services over their HTTP APIs, as a ``service`` principal: the
registry (a cell's manifest and archive, once per install) and the installer (the installation's
effective configuration, the cell's settings)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import structlog

from modyard.appcell_gateway.settings import GatewaySettings
from modyard.common.errors import ServiceUnavailable
from modyard.common.service_client import ServiceClient
from modyard.common.single_flight import SingleFlight

log = structlog.get_logger(__name__)


#: A cached configuration is fetched again when this little of its time is left (far more than
#: the installer takes to answer).
REFRESH_MARGIN_SECONDS = 1.0


class UpstreamMissing(LookupError):
    """The other service has no such thing (404)."""


class RegistryClient(ServiceClient):
    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(
            settings,
            base_url=settings.registry_url,
            subject="appcell-gateway",
            timeout=settings.registry_timeout_seconds,
        )

    async def _get(self, path: str) -> httpx.Response:
        try:
            response = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise ConnectionError(
                f"the registry at {self._settings.registry_url} cannot be reached"
            ) from exc
        if response.status_code == 404:
            raise UpstreamMissing(f"the registry has nothing at {path}")
        if response.is_error:
            raise ConnectionError(f"the registry answered {response.status_code} to {path}")
        return response

    async def manifest(self, name: str, version: str) -> dict[str, Any]:
        response = await self._get(f"/v1/modules/{name}/versions/{version}")
        return dict(response.json()["manifest"])

    async def archive(self, name: str, version: str) -> bytes:
        return (await self._get(f"/v1/modules/{name}/versions/{version}/archive")).content


class InstallerClient(ServiceClient):
    """Effective configurations, cached per installation (see ``settings_cache_seconds``) until an
    installation event drops them (:func:`~modyard.appcell_gateway.consumers.installation_news`).

    A cached configuration is fetched again in the background in the last second of its time
    (the last half, for a cache time under two seconds), so that under steady traffic no request
    waits for the installer: with a fetch on expiry, every request arriving during it waited
    behind it (a stall of all callers of the cell, every ``settings_cache_seconds``, in
    ``benchmarks/gateway.py``'s tail). Not at half time: each fetch costs the installer tens of
    milliseconds of CPU (py-spy, bench gateway, 2026-12-07), and with 5 s a copy lasts 4 s instead
    of 2.5 before the next. No copy is used past its expiry: a failed refresh leaves the next
    request after it to fetch, and to fail, as before.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(
            settings,
            base_url=settings.installer_url,
            subject="appcell-gateway",
            timeout=settings.installer_timeout_seconds,
        )
        self._ttl = settings.settings_cache_seconds
        #: How long before its expiry a copy in use is fetched again.
        self._refresh_within = min(REFRESH_MARGIN_SECONDS, self._ttl / 2)
        self._cache: dict[uuid.UUID, tuple[float, dict[str, Any]]] = {}
        # One fetch per installation at a time, in a task of its own: a burst of requests shares
        # it, and the first of them hanging up does not cancel it under the others.
        self._fetches: SingleFlight[uuid.UUID, dict[str, Any]] = SingleFlight("cell-settings")
        self._refreshes: set[asyncio.Task[None]] = set()

    def forget(self, installation_id: uuid.UUID) -> None:
        """Drop the copy, and leave a fetch in flight to its waiters: it may have read the
        settings the event replaced, so it is kept by no one and the next request fetches anew."""
        self._cache.pop(installation_id, None)
        self._fetches.forget(installation_id)

    def forget_all(self) -> None:
        self._cache.clear()
        self._fetches.forget_all()

    async def close(self) -> None:
        for refresh in self._refreshes:
            refresh.cancel()
        await super().close()

    async def effective_config(
        self, installation_id: uuid.UUID, workspace: str, slug: str
    ) -> dict[str, Any]:
        cached = self._cache.get(installation_id)
        if cached is not None:
            expires, config = cached
            left = expires - time.monotonic()
            if left > 0:
                if left < self._refresh_within and not self._fetches.reading(installation_id):
                    self._refresh_ahead(installation_id, workspace, slug)
                return config
        return await self._load(installation_id, workspace, slug)

    def _refresh_ahead(self, installation_id: uuid.UUID, workspace: str, slug: str) -> None:
        async def refresh() -> None:
            try:
                await self._load(installation_id, workspace, slug)
            except UpstreamMissing:
                self.forget(installation_id)  # being removed: the next request learns it
            except Exception as exc:  # the copy serves until it expires; then callers see why
                log.warning(
                    "cell_settings_refresh_failed", cell=f"{workspace}:{slug}", error=str(exc)[:300]
                )

        task = asyncio.create_task(refresh(), name=f"cell-settings-{workspace}:{slug}")
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _load(self, installation_id: uuid.UUID, workspace: str, slug: str) -> dict[str, Any]:
        def keep(config: dict[str, Any]) -> None:
            self._cache[installation_id] = (time.monotonic() + self._ttl, config)

        return await self._fetches.get(installation_id, lambda: self._fetch(workspace, slug), keep)

    async def _fetch(self, workspace: str, slug: str) -> dict[str, Any]:
        path = f"/v1/workspaces/{workspace}/installations/{slug}/effective-config"
        try:
            response = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                "The installer cannot be reached for the cell's settings; retry shortly."
            ) from exc
        if response.status_code == 404:
            raise UpstreamMissing(f"installation {slug!r} is not installed in {workspace!r}")
        if response.is_error:
            raise ServiceUnavailable(
                f"The installer answered {response.status_code} for the cell's settings; retry shortly."
            )
        return dict(response.json()["config"])
