"""What the runtime asks the installer, over its HTTP API, as a ``service`` principal."""

from __future__ import annotations

import time
from typing import Any

import httpx

from modyard.common.auth import Role, mint_token
from modyard.common.settings import CommonSettings
from modyard.runtime.components.base import ComponentError

TOKEN_TTL_SECONDS = 300
CONFIG_CACHE_SECONDS = 5.0


class InstallerUnavailable(ConnectionError):
    pass


class InstallerClient:
    def __init__(self, settings: CommonSettings, *, timeout: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._token = ""
        self._token_expires = 0.0
        self._configs: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._settings.installer_url, timeout=self._timeout
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
                subject="runtime",
                roles=[Role.service],
                ttl_seconds=TOKEN_TTL_SECONDS,
            )
            self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS / 2
        return {"Authorization": f"Bearer {self._token}"}

    async def _get(self, path: str, **params: str) -> httpx.Response:
        try:
            return await self._http.get(path, headers=self._headers(), params=params)
        except httpx.HTTPError as exc:
            raise InstallerUnavailable(
                f"the installer at {self._settings.installer_url} cannot be reached"
            ) from exc

    async def usable_components(self, workspace: str, owner: str) -> set[str]:
        """Component resources (``<module>.<component>``) ``owner`` may use in ``workspace``."""
        response = await self._get(f"/v1/workspaces/{workspace}/components", **{"as": owner})
        if response.is_error:
            raise InstallerUnavailable(
                f"the installer answered {response.status_code} listing components"
            )
        return {item["resource"] for item in response.json()}

    async def effective_config(self, workspace: str, slug: str) -> dict[str, Any]:
        """The installation's configuration for running it; a removed one is a retryable error."""
        key = (workspace, slug)
        cached = self._configs.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        try:
            response = await self._get(
                f"/v1/workspaces/{workspace}/installations/{slug}/effective-config"
            )
        except InstallerUnavailable as exc:
            raise ComponentError(str(exc), retryable=True) from exc
        if response.status_code == 404:
            raise ComponentError(
                f"installation {slug!r} is not installed in {workspace!r}",
                retryable=True,
                status=404,
            )
        if response.is_error:
            raise ComponentError(
                f"the installer answered {response.status_code}",
                retryable=True,
                status=response.status_code,
            )
        config = dict(response.json()["config"])
        self._configs[key] = (time.monotonic() + CONFIG_CACHE_SECONDS, config)
        return config
