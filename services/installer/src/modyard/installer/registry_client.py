"""What the installer asks the registry, over its HTTP API, as a ``service`` principal."""

from __future__ import annotations

import time
from typing import Any

import httpx

from modyard.common.auth import Role, mint_token
from modyard.common.errors import ServiceUnavailable
from modyard.installer.settings import InstallerSettings

TOKEN_TTL_SECONDS = 300


class RegistryClient:
    def __init__(
        self, settings: InstallerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport
        # Opened on first use, inside the event loop that will use it.
        self._client: httpx.AsyncClient | None = None
        self._token = ""
        self._token_expires = 0.0

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._settings.registry_url,
                timeout=self._settings.registry_timeout_seconds,
                transport=self._transport,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _headers(self) -> dict[str, str]:
        if time.monotonic() > self._token_expires:
            self._token = mint_token(
                self._settings,
                subject="installer",
                roles=[Role.service],
                ttl_seconds=TOKEN_TTL_SECONDS,
            )
            self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS / 2
        return {"Authorization": f"Bearer {self._token}"}

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
