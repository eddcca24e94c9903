"""The base of every client one service keeps for another's HTTP API.

It calls as a ``service`` principal with short-lived tokens minted from the shared JWT secret
(renewed halfway through their life), and opens its HTTP client on first use, inside the event
loop that will use it.
"""

from __future__ import annotations

import time

import httpx

from modyard.common.errors import ServiceUnavailable
from modyard.common.settings import CommonSettings
from modyard.common.tls import client_tls_context
from modyard.common.tokens import Role, mint_token

TOKEN_TTL_SECONDS = 300


class ServiceClient:
    #: The other service, as problems name it ("The registry at … cannot be reached").
    PEER = "service"

    def __init__(
        self,
        settings: CommonSettings,
        *,
        base_url: str,
        subject: str,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._base_url = base_url
        self._subject = subject
        self._timeout = timeout
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._token = ""
        self._token_expires = 0.0

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                timeout=self._timeout,
                transport=self._transport,
                # One context per process, not one CA bundle per client (modyard.common.tls).
                verify=client_tls_context(),
            )
        return self._client

    def _headers(self) -> dict[str, str]:
        if time.monotonic() > self._token_expires:
            self._token = mint_token(
                self._settings,
                subject=self._subject,
                roles=[Role.service],
                ttl_seconds=TOKEN_TTL_SECONDS,
            )
            self._token_expires = time.monotonic() + TOKEN_TTL_SECONDS / 2
        return {"Authorization": f"Bearer {self._token}"}

    def _unreachable(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"The {self.PEER} at {self._base_url} cannot be reached; retry shortly."
        )

    async def _get_or_none(self, path: str) -> httpx.Response | None:
        """``GET path`` as this service: None for a 404; a 503 problem when the other service
        cannot be reached or answers with an error."""
        try:
            response = await self._http.get(path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._unreachable() from exc
        if response.status_code == 404:
            return None
        if response.is_error:
            raise ServiceUnavailable(
                f"The {self.PEER} answered {response.status_code} to {path}; retry shortly."
            )
        return response

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
