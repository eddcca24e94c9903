"""What the gateway asks other services over their HTTP APIs, as a ``service`` principal: the
registry (a cell's manifest and archive, once per install) and the installer (the installation's
effective configuration, the cell's settings)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from modyard.appcell_gateway.settings import GatewaySettings
from modyard.common.errors import ServiceUnavailable
from modyard.common.service_client import ServiceClient


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
    """Effective configurations, cached briefly per installation (see ``settings_cache_seconds``)."""

    def __init__(self, settings: GatewaySettings) -> None:
        super().__init__(
            settings,
            base_url=settings.installer_url,
            subject="appcell-gateway",
            timeout=settings.installer_timeout_seconds,
        )
        self._ttl = settings.settings_cache_seconds
        self._cache: dict[uuid.UUID, tuple[float, dict[str, Any]]] = {}
        # One fetch per installation at a time: a burst of requests shares it.
        self._inflight: dict[uuid.UUID, asyncio.Future[dict[str, Any]]] = {}

    def forget(self, installation_id: uuid.UUID) -> None:
        self._cache.pop(installation_id, None)

    async def effective_config(
        self, installation_id: uuid.UUID, workspace: str, slug: str
    ) -> dict[str, Any]:
        cached = self._cache.get(installation_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        running = self._inflight.get(installation_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._inflight[installation_id] = future
        try:
            config = await self._fetch(workspace, slug)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        else:
            future.set_result(config)
            self._cache[installation_id] = (time.monotonic() + self._ttl, config)
            return config
        finally:
            self._inflight.pop(installation_id, None)

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
