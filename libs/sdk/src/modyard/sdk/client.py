"""A typed async client for the modyard services' HTTP APIs.

It grows with each service's API. Errors come back as :class:`ModyardAPIError`, which carries the
RFC 9457 problem the service answered with.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Literal, Self

import httpx
from pydantic import BaseModel

from modyard.common.diagnostics import PingReceipts, PingSent
from modyard.common.observability.health import Health
from modyard.common.settings import CommonSettings

SERVICES = ("registry", "installer", "runtime", "appcell-gateway", "deployer")


class ModyardAPIError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", "about:blank"))
        self.detail = str(problem.get("detail") or problem.get("title") or "no detail")
        super().__init__(f"{status}: {self.detail}")


class Readiness(BaseModel):
    service: str
    ready: bool
    checks: dict[str, str]
    detail: str | None = None


ServiceName = Literal["registry", "installer", "runtime", "appcell-gateway", "deployer"]


class ModyardClient:
    def __init__(
        self,
        urls: dict[str, str],
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._urls = dict(urls)
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(
        cls, settings: CommonSettings | None = None, *, token: str | None = None
    ) -> Self:
        settings = settings or CommonSettings()
        return cls(settings.service_urls(), token=token)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def url(self, service: str) -> str:
        try:
            return self._urls[service]
        except KeyError:
            raise ValueError(
                f"unknown service {service!r}; known: {', '.join(self._urls)}"
            ) from None

    async def _request(self, method: str, service: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self._http.request(method, self.url(service) + path, **kwargs)
        if response.is_error:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ModyardAPIError(
                response.status_code, problem if isinstance(problem, dict) else {}
            )
        return response

    # -- health ---------------------------------------------------------------------------------

    async def health(self, service: str) -> Health:
        return Health.model_validate((await self._request("GET", service, "/healthz")).json())

    async def readiness(self, service: str) -> Readiness:
        """Readiness of ``service``; a 503 is an answer here, not an error."""
        response = await self._http.get(self.url(service) + "/readyz")
        body = response.json()
        return Readiness(
            service=service,
            ready=response.status_code == 200,
            checks=body.get("checks", {}),
            detail=body.get("detail"),
        )

    # -- diagnostics ----------------------------------------------------------------------------

    async def send_ping(self, service: str) -> PingSent:
        response = await self._request("POST", service, "/v1/diagnostics/pings")
        return PingSent.model_validate(response.json())

    async def ping_receipts(self, service: str, ping_id: str) -> PingReceipts:
        response = await self._request("GET", service, f"/v1/diagnostics/pings/{ping_id}")
        return PingReceipts.model_validate(response.json())
