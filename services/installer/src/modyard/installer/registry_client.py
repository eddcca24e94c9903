"""What the installer asks the registry, over its HTTP API, as a ``service`` principal."""

from __future__ import annotations

from typing import Any

import httpx

from modyard.common.errors import ServiceUnavailable
from modyard.common.service_client import ServiceClient
from modyard.installer.settings import InstallerSettings


class RegistryClient(ServiceClient):
    def __init__(
        self, settings: InstallerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.registry_url,
            subject="installer",
            timeout=settings.registry_timeout_seconds,
            transport=transport,
        )

    async def _get(self, path: str) -> httpx.Response | None:
        try:
            response = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(
                f"The registry at {self._settings.registry_url} cannot be reached; retry shortly."
            ) from exc
        if response.status_code == 404:
            return None
        if response.is_error:
            raise ServiceUnavailable(
                f"The registry answered {response.status_code} to {path}; retry shortly."
            )
        return response

    async def index(self, name: str) -> list[dict[str, Any]] | None:
        """Every version of ``name`` with its dependencies, or None when the registry has no such module."""
        response = await self._get(f"/v1/modules/{name}/index")
        return None if response is None else list(response.json()["versions"])

    async def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        response = await self._get(f"/v1/modules/{name}/versions/{version}")
        return None if response is None else dict(response.json()["manifest"])
