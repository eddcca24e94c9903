"""What the installer asks the registry, over its HTTP API, as a ``service`` principal."""

from __future__ import annotations

from typing import Any

import httpx

from modyard.common.service_client import ServiceClient
from modyard.installer.settings import InstallerSettings


class RegistryClient(ServiceClient):
    PEER = "registry"

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

    async def index(self, name: str) -> list[dict[str, Any]] | None:
        """Every version of ``name`` with its dependencies, or None when the registry has no such module."""
        response = await self._get_or_none(f"/v1/modules/{name}/index")
        return None if response is None else list(response.json()["versions"])

    async def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        response = await self._get_or_none(f"/v1/modules/{name}/versions/{version}")
        return None if response is None else dict(response.json()["manifest"])
