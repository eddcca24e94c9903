"""What the runtime asks the registry, over its HTTP API, as a ``service`` principal."""

from __future__ import annotations

from typing import Any

import httpx

from modyard.common.errors import ServiceUnavailable, ValidationFailed
from modyard.common.service_client import ServiceClient
from modyard.common.settings import CommonSettings


class RegistryClient(ServiceClient):
    PEER = "registry"

    def __init__(
        self,
        settings: CommonSettings,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.registry_url,
            subject="runtime",
            timeout=timeout,
            transport=transport,
        )

    async def versions(self, name: str) -> list[str]:
        """Every version of ``name`` (yanked too: a version number is never reused)."""
        response = await self._get_or_none(f"/v1/modules/{name}/index")
        return [] if response is None else [v["version"] for v in response.json()["versions"]]

    async def manifest(self, name: str, version: str) -> dict[str, Any] | None:
        response = await self._get_or_none(f"/v1/modules/{name}/versions/{version}")
        return None if response is None else dict(response.json()["manifest"])

    async def publish(self, archive: bytes) -> dict[str, Any]:
        """Upload a zip archive; the registry's 4xx (the archive does not parse) is a 422."""
        try:
            response = await self._http.post(
                "/v1/modules",
                content=archive,
                headers={**self._headers(), "Content-Type": "application/zip"},
            )
        except httpx.HTTPError as exc:
            raise self._unreachable() from exc
        if 400 <= response.status_code < 500:
            body = response.json() if response.content else {}
            raise ValidationFailed(
                "The registry refused the published app: "
                f"{body.get('detail') or response.status_code}",
                slug="app-refused-by-registry",
                registry_errors=body.get("errors"),
            )
        if response.is_error:
            raise ServiceUnavailable(
                f"The registry answered {response.status_code} to the publish; retry shortly."
            )
        return dict(response.json())
