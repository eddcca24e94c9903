"""What the runner asks the registry: a module version's manifest and its archive."""

from __future__ import annotations

from typing import Any

import httpx

from modyard.common.errors import ServiceUnavailable
from modyard.common.service_client import ServiceClient
from modyard.jsrunner.settings import JsRunnerSettings


class RegistryClient(ServiceClient):
    PEER = "registry"

    def __init__(
        self, settings: JsRunnerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.registry_url,
            subject="js-runner",
            timeout=settings.registry_timeout_seconds,
            transport=transport,
        )

    async def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        response = await self._get_or_none(f"/v1/modules/{name}/versions/{version}")
        return None if response is None else dict(response.json()["manifest"])

    async def archive(self, name: str, version: str) -> tuple[bytes, str]:
        """The archive as published and its digest (the ``ETag``)."""
        response = await self._get_or_none(f"/v1/modules/{name}/versions/{version}/archive")
        if response is None:
            raise ServiceUnavailable(f"The registry has no archive of {name} {version}.")
        return response.content, response.headers.get("etag", "").strip('"')

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
