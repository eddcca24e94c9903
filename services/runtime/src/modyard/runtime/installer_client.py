"""What the runtime asks the installer, over its HTTP API, as a ``service`` principal."""

from __future__ import annotations

from typing import Any

import httpx

from modyard.common.service_client import ServiceClient
from modyard.common.settings import CommonSettings
from modyard.common.single_flight import ExpiringCopies
from modyard.runtime.components.base import ComponentError

#: Seconds a process trusts its copy of an installation's effective config: the installer's
#: ``installation.*`` events drop it in every runtime process (replica_news.py); this bounds what
#: no event announces (a secret rotated at the installer, an environment override changed).
CONFIG_CACHE_SECONDS = 5.0


class InstallerUnavailable(ConnectionError):
    pass


class InstallerClient(ServiceClient):
    def __init__(
        self,
        settings: CommonSettings,
        *,
        timeout: float = 10.0,
        config_cache_seconds: float = CONFIG_CACHE_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.installer_url,
            subject="runtime",
            timeout=timeout,
            transport=transport,
        )
        #: One fetch per installation at a time; one in flight when the installation changes
        #: answers its waiters but is not kept.
        self._configs: ExpiringCopies[tuple[str, str], dict[str, Any]] = ExpiringCopies(
            "config", self._fetch_config, config_cache_seconds
        )

    def forget_config(self, workspace: str, slug: str) -> None:
        self._configs.forget((workspace, slug))

    def forget_configs(self) -> None:
        self._configs.forget_all()

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

    async def check_accounts(
        self, workspace: str, owner: str, nodes: list[dict[str, Any]]
    ) -> list[dict[str, str]]:
        """The problems of the nodes' accounts (``{node, detail}``), as the installer sees them."""
        try:
            response = await self._http.post(
                f"/v1/workspaces/{workspace}/accounts/checks",
                json={"owner": owner, "nodes": nodes},
                headers=self._headers(),
            )
        except httpx.HTTPError as exc:
            raise InstallerUnavailable(
                f"the installer at {self._settings.installer_url} cannot be reached"
            ) from exc
        if response.is_error:
            raise InstallerUnavailable(
                f"the installer answered {response.status_code} checking accounts"
            )
        return list(response.json()["problems"])

    async def member_role(self, workspace: str, subject: str) -> str | None:
        """``subject``'s role in ``workspace`` (``None``: not a member), read now, not cached."""
        response = await self._get(f"/v1/workspaces/{workspace}")
        if response.is_error:
            raise InstallerUnavailable(
                f"the installer answered {response.status_code} reading workspace {workspace!r}"
            )
        for member in response.json().get("members", []):
            if member.get("subject") == subject:
                return str(member.get("role"))
        return None

    async def effective_config(self, workspace: str, slug: str) -> dict[str, Any]:
        """The installation's configuration for running it; a removed one is a retryable error."""
        return await self._configs.get((workspace, slug))

    async def _fetch_config(self, key: tuple[str, str]) -> dict[str, Any]:
        workspace, slug = key
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
        return dict(response.json()["config"])
